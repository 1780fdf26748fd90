//! skiff's object model: everything the API server needs to know about Kubernetes
//! objects that does not involve I/O.
//!
//! Objects travel through skiff as `serde_json::Value` (the JSON the client sent, with
//! the fields skiff does not understand preserved); the typed `k8s-openapi` structs are
//! used where a component needs to reason about a field.
//!
//! # Layout
//! - [`resource`]: the registry of served resources (group, version, kind, plural,
//!   scope, short names, categories, subresources) that drives routing and discovery.
//! - [`status`]: `metav1.Status` errors with the HTTP code, reason and field causes.
//! - [`meta`]: small accessors for `metadata` fields of a JSON object.
//! - [`selector`]: label selectors (parse, match) with the full Kubernetes grammar.
//! - [`fields`]: field selectors (parse, match) per resource.
//! - [`convert`]: conversion between versions that share one storage (Events).
//! - [`validation`]: Kubernetes validation rules (names, labels, required and immutable
//!   fields) producing field errors.
//! - [`defaults`]: server-side defaulting per kind (what the API server fills in).
//! - [`table`]: `meta.k8s.io/v1` Table columns and rows, as `kubectl get` shows them.
//! - [`patch`]: JSON patch, JSON merge patch and strategic merge patch.
//! - [`protobuf`]: decoding `application/vnd.kubernetes.protobuf` request bodies.
//! - [`openapi`]: the OpenAPI v3 and v2 documents kubectl validates against.

pub mod convert;
pub mod defaults;
pub mod fields;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resource;
pub mod selector;
pub mod status;
pub mod table;
pub mod validation;

pub use resource::{ResourceInfo, Scope};
pub use status::{ApiError, Cause};
