//! The thin edge of the index: kube-rs watchers feeding [`Index`]. Every
//! kind has its own watch task; a relist replaces the kind atomically
//! ([`Index::reset`]); a watch error is logged and retried with backoff.
//! User-written kinds (Istio and Gateway API) are read through
//! [`DeserializeGuard`], so one malformed object is logged, reported as a
//! Kubernetes Event and skipped (the last good version stays) instead of
//! stalling the watch.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Namespace, Node, ObjectReference, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use weft_api::gateway::{gatewayclasses, gateways, grpcroutes, httproutes, referencegrants};
use weft_api::istio::{networking, security};

use super::{Index, Indexed, ObjectKey};

/// The index shared by the watch tasks (and read by nobody else: readers
/// subscribe to snapshots). The lock is held only for one synchronous update.
pub type SharedIndex = Arc<Mutex<Index>>;

fn lock(index: &SharedIndex) -> MutexGuard<'_, Index> {
    // A panic in another holder cannot leave the index half-updated in a
    // way later updates would not repair, so keep going.
    index
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A user object that could not be read.
#[derive(Debug, Clone)]
struct Invalid {
    reference: ObjectReference,
    error: String,
}

/// Starts one watch task per kind plus the task that records Events for
/// malformed objects. The tasks run until aborted.
pub fn spawn(client: Client, index: SharedIndex, reporter: Reporter) -> Vec<JoinHandle<()>> {
    let (invalid_tx, invalid_rx) = mpsc::unbounded_channel();
    let recorder = Recorder::new(client.clone(), reporter);
    let mut tasks = vec![tokio::spawn(record_invalid(recorder, invalid_rx))];

    macro_rules! core {
        ($ty:ty, $api:expr) => {
            tasks.push(tokio::spawn(run::<$ty, $ty>(
                $api,
                index.clone(),
                |o: $ty| Some(o),
            )))
        };
    }
    macro_rules! user {
        ($ty:ty) => {{
            let tx = invalid_tx.clone();
            tasks.push(tokio::spawn(run::<DeserializeGuard<$ty>, $ty>(
                Api::all(client.clone()),
                index.clone(),
                move |o| accept_valid(o, &tx),
            )))
        }};
    }

    core!(Service, Api::all(client.clone()));
    core!(EndpointSlice, Api::all(client.clone()));
    core!(Pod, Api::all(client.clone()));
    core!(Namespace, Api::all(client.clone()));
    core!(ServiceAccount, Api::all(client.clone()));
    core!(Node, Api::all(client.clone()));
    user!(networking::VirtualService);
    user!(networking::DestinationRule);
    user!(networking::Gateway);
    user!(networking::ServiceEntry);
    user!(networking::Sidecar);
    user!(security::PeerAuthentication);
    user!(security::AuthorizationPolicy);
    user!(security::RequestAuthentication);
    user!(gatewayclasses::GatewayClass);
    user!(gateways::Gateway);
    user!(httproutes::HttpRoute);
    user!(grpcroutes::GrpcRoute);
    user!(referencegrants::ReferenceGrant);
    tasks.push(tokio::spawn(run_secrets(Api::all(client), index)));
    tasks
}

/// Keeps a well-formed object; reports a malformed one and skips it.
fn accept_valid<K>(
    guard: DeserializeGuard<K>,
    invalid: &mpsc::UnboundedSender<Invalid>,
) -> Option<K>
where
    K: Indexed + Resource<DynamicType = ()>,
{
    match guard.0 {
        Ok(obj) => Some(obj),
        Err(InvalidObject { error, metadata }) => {
            let key = ObjectKey::new(
                metadata.namespace.clone().unwrap_or_default(),
                metadata.name.clone().unwrap_or_default(),
            );
            tracing::warn!(
                kind = %K::kind(&()),
                object = %key,
                %error,
                "skipping a malformed object: fix it (kubectl edit) so weftd can use it"
            );
            let reference = ObjectReference {
                api_version: Some(K::api_version(&()).into_owned()),
                kind: Some(K::kind(&()).into_owned()),
                name: metadata.name,
                namespace: metadata.namespace,
                uid: metadata.uid,
                ..ObjectReference::default()
            };
            // The receiver lives as long as the watch tasks; a send error
            // only means shutdown.
            let _ = invalid.send(Invalid { reference, error });
            None
        }
    }
}

/// Records one Warning Event per malformed object (the recorder
/// deduplicates repeats into a series).
async fn record_invalid(recorder: Recorder, mut rx: mpsc::UnboundedReceiver<Invalid>) {
    while let Some(invalid) = rx.recv().await {
        let mut note = format!(
            "weftd ignores this object until it is fixed: {}",
            invalid.error
        );
        if note.len() > 1000 {
            let mut end = 1000;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: "InvalidObject".into(),
            note: Some(note),
            action: "Index".into(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &invalid.reference).await {
            tracing::warn!(%error, "could not record an Event for a malformed object: does weftd may create events.k8s.io Events?");
        }
    }
}

/// Feeds one kind into the index. `accept` turns what the API returned
/// into the stored object, or `None` to skip it.
async fn run<T, K>(api: Api<T>, index: SharedIndex, accept: impl Fn(T) -> Option<K>)
where
    T: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
    K: Indexed,
{
    let kind = T::kind(&()).into_owned();
    let mut stream = watcher(api).default_backoff().boxed();
    let mut initial: Vec<K> = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => initial.clear(),
            Ok(Event::InitApply(obj)) => initial.extend(accept(obj)),
            Ok(Event::InitDone) => {
                let objs = std::mem::take(&mut initial);
                tracing::debug!(%kind, count = objs.len(), "listed");
                lock(&index).reset(objs);
            }
            Ok(Event::Apply(obj)) => {
                if let Some(obj) = accept(obj) {
                    lock(&index).apply(obj);
                }
            }
            Ok(Event::Delete(obj)) => lock(&index).delete::<K>(&ObjectKey::of(&obj)),
            Err(error) => {
                tracing::warn!(%kind, %error, "watch failed, retrying with backoff: is the CRD installed and may weftd list and watch it?");
            }
        }
    }
}

/// Secrets feed the TLS credential pool; only referenced ones are published.
async fn run_secrets(api: Api<Secret>, index: SharedIndex) {
    let mut stream = watcher(api).default_backoff().boxed();
    let mut initial: Vec<Secret> = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => initial.clear(),
            Ok(Event::InitApply(secret)) => initial.push(secret),
            Ok(Event::InitDone) => lock(&index).reset_secrets(&std::mem::take(&mut initial)),
            Ok(Event::Apply(secret)) => lock(&index).apply_secret(&secret),
            Ok(Event::Delete(secret)) => lock(&index).delete_secret(&ObjectKey::of(&secret)),
            Err(error) => {
                tracing::warn!(kind = "Secret", %error, "watch failed, retrying with backoff: may weftd list and watch Secrets?");
            }
        }
    }
}

fn watcher<T>(api: Api<T>) -> impl futures::Stream<Item = Result<Event<T>, watcher::Error>> + Send
where
    T: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_malformed_object_is_reported_and_skipped() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let bad: DeserializeGuard<networking::VirtualService> = serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"namespace": "shop", "name": "broken", "uid": "u1"},
            "spec": {"hosts": "not-a-list"}
        }))
        .expect("the guard always parses");
        assert!(accept_valid(bad, &tx).is_none());
        let report = rx.try_recv().expect("reported");
        assert_eq!(report.reference.name.as_deref(), Some("broken"));
        assert_eq!(report.reference.kind.as_deref(), Some("VirtualService"));
        assert_eq!(report.reference.uid.as_deref(), Some("u1"));
        assert!(report.error.contains("sequence"), "{}", report.error);

        let good: DeserializeGuard<networking::VirtualService> = serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"namespace": "shop", "name": "ok"},
            "spec": {"hosts": ["cart"]}
        }))
        .expect("parses");
        assert!(accept_valid(good, &tx).is_some());
        assert!(rx.try_recv().is_err());
    }
}
