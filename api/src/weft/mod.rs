//! weft.dev/v1alpha1
