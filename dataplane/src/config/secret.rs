//! Secret compilation: TLS certificates for gateways (inline PEM) and
//! validation contexts (the `ROOTCA` trust bundle).

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};

use super::error::{ConfigError, Ctx};
use super::model::SecretConfig;
use crate::tls::ServingCert;

fn inline(ctx: &Ctx<'_>, field: &str, d: Option<&DataSource>) -> Result<Vec<u8>, ConfigError> {
    match d.and_then(|d| d.specifier.as_ref()) {
        Some(data_source::Specifier::InlineBytes(b)) => Ok(b.clone()),
        Some(data_source::Specifier::InlineString(s)) => Ok(s.clone().into_bytes()),
        Some(_) => Err(ctx.err(field, "only inline_bytes and inline_string are supported")),
        None => Err(ctx.err(field, "required")),
    }
}

pub fn compile(ctx: &Ctx<'_>, s: &Secret) -> Result<SecretConfig, ConfigError> {
    match &s.r#type {
        Some(secret::Type::TlsCertificate(t)) => {
            let chain = inline(
                ctx,
                "tls_certificate.certificate_chain",
                t.certificate_chain.as_ref(),
            )?;
            let key = inline(ctx, "tls_certificate.private_key", t.private_key.as_ref())?;
            let cert = ServingCert::from_pem(&chain, &key)
                .map_err(|e| ctx.err("tls_certificate", e.to_string()))?;
            Ok(SecretConfig::Certificate(Arc::new(cert)))
        }
        Some(secret::Type::ValidationContext(v)) => {
            let pem = inline(ctx, "validation_context.trusted_ca", v.trusted_ca.as_ref())?;
            Ok(SecretConfig::ValidationContext {
                trusted_ca_pem: pem,
            })
        }
        _ => Err(ctx.err(
            "type",
            "only tls_certificate and validation_context secrets are supported",
        )),
    }
}
