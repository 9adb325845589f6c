//! The label values of the ingress's metrics: each a fixed set, an enum with
//! `as_str()` (and `ALL` where every value is pre-registered or tested), so a
//! label, a log field and a test list come from one place.

use shared::signing::SignatureError;

/// The route of a request, as a label value. Classified from the method and
/// path by the server, before any filter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteLabel {
    Kapso,
    KapsoWorkspace,
    Meta,
    MetaVerify,
    Health,
    Other,
}

impl RouteLabel {
    pub fn classify(method: &warp::http::Method, path: &str) -> Self {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["webhooks", "kapso"] => Self::Kapso,
            ["webhooks", "kapso", ws] if !ws.is_empty() => Self::KapsoWorkspace,
            ["webhooks", "meta"] if method == warp::http::Method::GET => Self::MetaVerify,
            ["webhooks", "meta"] => Self::Meta,
            ["healthz" | "readyz"] => Self::Health,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kapso => "kapso",
            Self::KapsoWorkspace => "kapso_workspace",
            Self::Meta => "meta",
            Self::MetaVerify => "meta_verify",
            Self::Health => "health",
            Self::Other => "other",
        }
    }

    /// The methods the route answers, for the `Allow` header of a 405.
    pub fn allow(self) -> Option<&'static str> {
        match self {
            Self::Kapso | Self::KapsoWorkspace => Some("POST"),
            Self::Meta | Self::MetaVerify => Some("GET, POST"),
            Self::Health => Some("GET, HEAD"),
            Self::Other => None,
        }
    }
}

/// Which kind of topic a record went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    Routed,
    Unrouted,
    DeadLetter,
}

impl TopicKind {
    pub const ALL: &[TopicKind] = &[
        TopicKind::Routed,
        TopicKind::Unrouted,
        TopicKind::DeadLetter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Routed => "routed",
            Self::Unrouted => "unrouted",
            Self::DeadLetter => "dead_letter",
        }
    }
}

/// Why a signature was refused: the `reason` label of the signature failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureFailure {
    Missing,
    Malformed,
    Mismatch,
    NoSecret,
}

impl SignatureFailure {
    pub const ALL: &[SignatureFailure] = &[
        SignatureFailure::Missing,
        SignatureFailure::Malformed,
        SignatureFailure::Mismatch,
        SignatureFailure::NoSecret,
    ];

    pub fn of(err: &SignatureError) -> Self {
        match err {
            SignatureError::Missing => SignatureFailure::Missing,
            SignatureError::Malformed(_) => SignatureFailure::Malformed,
            SignatureError::Mismatch => SignatureFailure::Mismatch,
            SignatureError::NoSecret => SignatureFailure::NoSecret,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignatureFailure::Missing => "missing",
            SignatureFailure::Malformed => "malformed",
            SignatureFailure::Mismatch => "mismatch",
            SignatureFailure::NoSecret => "no_secret",
        }
    }
}

/// How a registry reload ended: the `result` label of the reloads counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadResult {
    Ok,
    Error,
}

impl ReloadResult {
    pub const ALL: &[ReloadResult] = &[ReloadResult::Ok, ReloadResult::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Error => "error",
        }
    }
}

/// What started a registry reload (a log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadTrigger {
    Sighup,
    FileChanged,
}

impl ReloadTrigger {
    pub const ALL: &[ReloadTrigger] = &[ReloadTrigger::Sighup, ReloadTrigger::FileChanged];

    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::Sighup => "sighup",
            ReloadTrigger::FileChanged => "file_changed",
        }
    }
}

/// Which listener a connection came to: the `listener` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerLabel {
    /// The webhook listener (`listen_addr`).
    Webhooks,
    /// The admin listener (`admin_addr`): metrics and health.
    Admin,
}

impl ListenerLabel {
    pub const ALL: &[ListenerLabel] = &[ListenerLabel::Webhooks, ListenerLabel::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhooks => "webhooks",
            Self::Admin => "admin",
        }
    }
}

/// Why a connection was answered 503 and closed instead of served: the
/// `reason` label of the connection rejections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionRejection {
    /// The listener already serves its `max_connections`.
    ServerFull,
    /// The client (source IP address) already holds its
    /// `max_connections_per_client`.
    ClientFull,
}

impl ConnectionRejection {
    pub const ALL: &[ConnectionRejection] = &[
        ConnectionRejection::ServerFull,
        ConnectionRejection::ClientFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerFull => "server_full",
            Self::ClientFull => "client_full",
        }
    }
}
