//! The two ADS protocols, state of the world ([`SotwType`]) and delta
//! ([`DeltaType`]), as the one stream loop of [`super::server`] drives
//! them: their messages and their per-type state.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};

use super::delta::DeltaType;
use super::sotw::{Outcome, SotwType};
use super::subscription::Subscription;
use crate::resources::Resources;

/// One protocol's per-type state (`Self`) and messages.
pub trait Protocol: Sized + Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    /// The protocol's name in logs and proxy status.
    const NAME: &'static str;
    /// The request message's name, for errors sent to the client.
    const REQUEST: &'static str;

    fn type_url(req: &Self::Request) -> &str;
    fn node(req: &Self::Request) -> Option<&Node>;
    fn response_nonce(req: &Self::Request) -> &str;
    /// State for the first request of `type_url` on a stream.
    fn subscribe(type_url: &str, first: &Self::Request) -> (Self, Outcome);
    /// A later request for the type.
    fn on_request(&mut self, req: &Self::Request) -> Outcome;
    fn subscription(&self) -> &Subscription;
    /// The response that brings the client to `snapshot` (generation
    /// `generation`), if it needs one; `answering`: the response answers a
    /// request rather than a push.
    fn response(
        &mut self,
        snapshot: &Arc<Resources>,
        generation: u64,
        nonce: String,
        answering: bool,
    ) -> Option<Self::Response>;
    /// What a response records as sent: (version, nonce).
    fn sent(resp: &Self::Response) -> (&str, &str);
}

impl Protocol for SotwType {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const NAME: &'static str = "sotw";
    const REQUEST: &'static str = "DiscoveryRequest";

    fn type_url(req: &DiscoveryRequest) -> &str {
        &req.type_url
    }

    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn response_nonce(req: &DiscoveryRequest) -> &str {
        &req.response_nonce
    }

    fn subscribe(type_url: &str, first: &DiscoveryRequest) -> (Self, Outcome) {
        SotwType::new(type_url, first)
    }

    fn on_request(&mut self, req: &DiscoveryRequest) -> Outcome {
        SotwType::on_request(self, req)
    }

    fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// A request is answered even when the client already has the
    /// version (its subscription may have changed).
    fn response(
        &mut self,
        snapshot: &Arc<Resources>,
        _generation: u64,
        nonce: String,
        answering: bool,
    ) -> Option<DiscoveryResponse> {
        SotwType::response(self, snapshot, || nonce, answering)
    }

    fn sent(resp: &DiscoveryResponse) -> (&str, &str) {
        (&resp.version_info, &resp.nonce)
    }
}

impl Protocol for DeltaType {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const NAME: &'static str = "delta";
    const REQUEST: &'static str = "DeltaDiscoveryRequest";

    fn type_url(req: &DeltaDiscoveryRequest) -> &str {
        &req.type_url
    }

    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn response_nonce(req: &DeltaDiscoveryRequest) -> &str {
        &req.response_nonce
    }

    fn subscribe(type_url: &str, first: &DeltaDiscoveryRequest) -> (Self, Outcome) {
        DeltaType::new(type_url, first)
    }

    fn on_request(&mut self, req: &DeltaDiscoveryRequest) -> Outcome {
        DeltaType::on_request(self, req)
    }

    fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// The snapshot's generation is the response's system version.
    fn response(
        &mut self,
        snapshot: &Arc<Resources>,
        generation: u64,
        nonce: String,
        _answering: bool,
    ) -> Option<DeltaDiscoveryResponse> {
        DeltaType::response(self, snapshot, &generation.to_string(), || nonce)
    }

    fn sent(resp: &DeltaDiscoveryResponse) -> (&str, &str) {
        (&resp.system_version_info, &resp.nonce)
    }
}
