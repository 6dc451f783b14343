//! The full CRD set Weft installs.
