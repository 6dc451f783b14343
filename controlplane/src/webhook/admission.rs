//! AdmissionReview in, AdmissionReview out: the pure part of the webhook
//! server. Injection errors and invalid objects are refused with a message
//! naming the cause; nothing is let through silently.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use weft_api::validate::Schemas;
use weft_api::validator::VALIDATED_GROUPS;

use crate::inject::{self, InjectSettings, Outcome};
use crate::validation;

/// Parses a request body into an AdmissionRequest, or the response that
/// tells the API server what was wrong with it.
pub fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, Box<AdmissionResponse>> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body).map_err(|e| {
        Box::new(AdmissionResponse::invalid(format!(
            "weftd cannot read the AdmissionReview: {e}; send admission.k8s.io/v1"
        )))
    })?;
    review.try_into().map_err(|_| {
        Box::new(AdmissionResponse::invalid(
            "weftd received an AdmissionReview without a request",
        ))
    })
}

/// The serialized AdmissionReview for `response`. The patch is written
/// base64-encoded, as the API server's JSON decoding of a `[]byte` field
/// expects (kube-core writes it as an array of numbers: kube-rs#1781).
pub fn to_body(response: AdmissionResponse) -> Vec<u8> {
    let patch = response.patch.clone();
    let mut review = match serde_json::to_value(response.into_review()) {
        Ok(v) => v,
        // An empty body makes the API server apply the failure policy (Fail).
        Err(_) => return Vec::new(),
    };
    if let (Some(patch), Some(slot)) = (patch, review.pointer_mut("/response/patch"))
        && let Ok(encoded) = serde_json::to_value(k8s_openapi::ByteString(patch))
    {
        *slot = encoded;
    }
    serde_json::to_vec(&review).unwrap_or_default()
}

/// The `/inject` answer for `request`, whose pod lives in `namespace`.
/// Anything but a pod CREATE is allowed unchanged.
pub fn inject(
    request: &AdmissionRequest<DynamicObject>,
    namespace: &Namespace,
    settings: &InjectSettings,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    if request.operation != Operation::Create || request.kind.kind != "Pod" {
        return response;
    }
    let Some(object) = &request.object else {
        return response.deny("weftd: the pod CREATE request carries no object");
    };
    let pod: Pod = match serde_json::to_value(object).and_then(serde_json::from_value) {
        Ok(pod) => pod,
        Err(e) => return response.deny(format!("weftd cannot read the pod: {e}")),
    };
    let pod_name = pod
        .metadata
        .name
        .clone()
        .or_else(|| pod.metadata.generate_name.clone())
        .unwrap_or_default();
    let ns = request.namespace.as_deref().unwrap_or_default();
    match inject::admit(&pod, namespace, settings) {
        Ok(Outcome::Skip(reason)) => {
            tracing::debug!(namespace = ns, pod = %pod_name, reason = reason.label(), "not injecting");
            response
        }
        Ok(Outcome::Inject {
            selected_by,
            injected,
        }) => {
            tracing::info!(namespace = ns, pod = %pod_name, ?selected_by, revision = %settings.revision, "injecting sidecar");
            match response.clone().with_patch(injected.patch) {
                Ok(r) => r,
                Err(e) => response.deny(format!("weftd could not encode the injection patch: {e}")),
            }
        }
        Err(e) => {
            tracing::warn!(namespace = ns, pod = %pod_name, error = %e, label = e.label(), "injection refused");
            response.deny(format!(
                "weftd (revision {}) cannot inject the sidecar into pod {pod_name}: {e}",
                settings.revision
            ))
        }
    }
}

/// The `/validate` answer for `request`: CREATE and UPDATE of Istio
/// networking/security objects are checked, anything else allowed.
pub fn validate(request: &AdmissionRequest<DynamicObject>, schemas: &Schemas) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    if !matches!(request.operation, Operation::Create | Operation::Update)
        || !VALIDATED_GROUPS.contains(&request.kind.group.as_str())
    {
        return response;
    }
    let Some(object) = &request.object else {
        return response.deny("weftd: the request carries no object to validate");
    };
    let value = match serde_json::to_value(object) {
        Ok(v) => v,
        Err(e) => return response.deny(format!("weftd cannot read the object: {e}")),
    };
    let what = format!(
        "{} {}/{}",
        request.kind.kind,
        request.namespace.as_deref().unwrap_or_default(),
        request.name
    );
    match validation::validate(schemas, &value) {
        Ok(violations) if violations.is_empty() => response,
        Ok(violations) => {
            tracing::info!(object = %what, count = violations.len(), "refusing invalid object");
            response.deny(format!(
                "{what} is invalid: {}",
                validation::describe(&violations)
            ))
        }
        Err(e) => {
            tracing::warn!(object = %what, error = %e, label = e.label(), "cannot validate");
            response.deny(format!("weftd cannot validate {what}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn review(kind: (&str, &str, &str), operation: &str, object: Value) -> Vec<u8> {
        let (group, version, kind) = kind;
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": group, "version": version, "kind": kind},
                "resource": {"group": group, "version": version, "resource": "x"},
                "namespace": "shop",
                "name": "x",
                "operation": operation,
                "userInfo": {"username": "alice"},
                "object": object,
            }
        }))
        .expect("json")
    }

    fn enabled_ns() -> Namespace {
        serde_json::from_value(json!({
            "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}
        }))
        .expect("namespace")
    }

    fn settings() -> InjectSettings {
        let mut s = InjectSettings::new("1-2", "weft-system", "proxy:dev");
        s.tags = vec!["default".into()];
        s
    }

    fn pod(annotations: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "shop", "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}
        })
    }

    fn response_json(r: AdmissionResponse) -> Value {
        serde_json::from_slice(&to_body(r)).expect("response is json")
    }

    #[test]
    fn selected_pod_gets_a_patch() {
        let request = parse(&review(("", "v1", "Pod"), "CREATE", pod(json!({})))).expect("parses");
        let r = response_json(inject(&request, &enabled_ns(), &settings()));
        assert_eq!(r["response"]["uid"], "u-1");
        assert_eq!(r["response"]["allowed"], true);
        assert_eq!(r["response"]["patchType"], "JSONPatch");
        let patch = r["response"]["patch"].clone();
        let bytes: k8s_openapi::ByteString =
            serde_json::from_value(patch).expect("the patch is a base64 string");
        let ops: Value = serde_json::from_slice(&bytes.0).expect("the patch is JSON");
        let paths: Vec<&str> = ops
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|op| op["path"].as_str())
            .collect();
        assert!(paths.contains(&"/spec/initContainers"), "{paths:?}");
    }

    #[test]
    fn opted_out_pod_is_allowed_unchanged() {
        let object = pod(json!({"sidecar.istio.io/inject": "false"}));
        let request = parse(&review(("", "v1", "Pod"), "CREATE", object)).expect("parses");
        let r = response_json(inject(&request, &enabled_ns(), &settings()));
        assert_eq!(r["response"]["allowed"], true);
        assert!(r["response"].get("patch").is_none(), "{r}");
    }

    #[test]
    fn injection_error_is_refused_with_a_message() {
        let object = pod(json!({"traffic.sidecar.istio.io/excludeInboundPorts": "http"}));
        let request = parse(&review(("", "v1", "Pod"), "CREATE", object)).expect("parses");
        let r = response_json(inject(&request, &enabled_ns(), &settings()));
        assert_eq!(r["response"]["allowed"], false);
        let message = r["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("excludeInboundPorts"), "{message}");
    }

    #[test]
    fn garbage_is_answered_as_invalid() {
        let r = parse(b"{not json").expect_err("refused");
        assert!(!r.allowed);
        let r = parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
            .expect_err("refused");
        assert!(!r.allowed);
    }

    #[test]
    fn invalid_virtual_service_is_refused_with_the_field() {
        let vs = json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "x", "namespace": "shop"},
            "spec": {"hosts": ["r"], "http": [{"match": [{"uri": {"regex": "(v1"}}],
                     "route": [{"destination": {"host": "r"}}]}]}
        });
        let body = review(
            ("networking.istio.io", "v1", "VirtualService"),
            "CREATE",
            vs.clone(),
        );
        let request = parse(&body).expect("parses");
        let r = response_json(validate(&request, &Schemas::default()));
        assert_eq!(r["response"]["allowed"], false);
        let message = r["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains("spec.http[0].match[0].uri.regex"),
            "{message}"
        );

        let body = review(
            ("networking.istio.io", "v1", "VirtualService"),
            "DELETE",
            vs,
        );
        let request = parse(&body).expect("parses");
        assert!(validate(&request, &Schemas::default()).allowed);
    }
}
