//! The documents carry what kubectl reads: GVK-tagged schemas and PATCH operations,
//! patch merge keys, and a v2 protobuf that decodes back to the same content.

use super::*;

#[test]
fn index_lists_every_served_group_version_with_a_hash() {
    let idx = v3_index();
    let paths = idx["paths"].as_object().unwrap();
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/networking.k8s.io/v1",
        "apis/events.k8s.io/v1",
    ] {
        let url = paths[gv]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{url}");
        assert!(
            v3_document(url.trim_start_matches("/openapi/v3/")).is_some(),
            "{url} must be served"
        );
    }
    assert_eq!(paths.len(), crate::resource::group_versions().len());
    assert!(v3_document("apis/example.com/v1").is_none());
}

#[test]
fn v3_document_tags_schemas_and_patch_operations_with_their_kind() {
    let doc = v3_document("apis/apps/v1").unwrap();
    let dep = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        dep["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
    );
    let spec_ref = dep["properties"]["spec"]["$ref"].as_str().unwrap();
    assert_eq!(
        spec_ref,
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    );
    // Every reference resolves inside the document.
    let mut refs = Vec::new();
    collect_v3_refs(&doc, &mut refs);
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} dangles"
        );
    }
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    assert!(patch["requestBody"]["content"]
        .get("application/strategic-merge-patch+json")
        .is_some());
    let names: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"fieldValidation"),
        "the server validates fields, so kubectl must be told to leave it to the server"
    );
    let client_side = v3_document_with(
        "apis/apps/v1",
        Options {
            server_field_validation: false,
        },
    )
    .unwrap();
    let patch =
        &client_side["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(!patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "fieldValidation"));
}

fn collect_v3_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| collect_v3_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_v3_refs(x, out)),
        _ => {}
    }
}

#[test]
fn schemas_carry_types_required_fields_and_patch_merge_keys() {
    let doc = v3_document("api/v1").unwrap();
    let s = &doc["components"]["schemas"];
    let cases = [
        (
            "io.k8s.api.core.v1.PodSpec",
            "containers",
            "x-kubernetes-patch-merge-key",
            json!("name"),
        ),
        (
            "io.k8s.api.core.v1.Container",
            "ports",
            "x-kubernetes-patch-merge-key",
            json!("containerPort"),
        ),
        (
            "io.k8s.api.core.v1.Container",
            "env",
            "x-kubernetes-patch-strategy",
            json!("merge"),
        ),
        (
            "io.k8s.api.core.v1.ServiceSpec",
            "clusterIP",
            "type",
            json!("string"),
        ),
        (
            "io.k8s.api.core.v1.ContainerPort",
            "containerPort",
            "type",
            json!("integer"),
        ),
    ];
    for (def, prop, key, want) in cases {
        assert_eq!(s[def]["properties"][prop][key], want, "{def}.{prop}.{key}");
    }
    assert_eq!(
        s["io.k8s.api.core.v1.Container"]["required"],
        json!(["name"])
    );
    // Objects do not require metadata (k8s-openapi's typed structs do; upstream does not).
    assert!(s["io.k8s.api.core.v1.Pod"].get("required").is_none());
    assert_eq!(
        s["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["x-kubernetes-int-or-string"],
        true
    );
    // A kind added to the registry needs `gen_definitions.py` run with it among the roots.
    for r in crate::resource::RESOURCES {
        let doc = v3_document(&gv_path(r.group, r.version)).unwrap();
        let schema = &doc["components"]["schemas"][definition_name(r.group, r.version, r.kind)];
        assert_eq!(
            schema["x-kubernetes-group-version-kind"],
            json!([gvk(r)]),
            "{}",
            r.kind
        );
        assert!(
            schema["properties"]["spec"].is_object()
                || schema["properties"]["data"].is_object()
                || schema["properties"]["metadata"].is_object(),
            "{} has properties",
            r.kind
        );
        let (_, item) = resource_paths(r);
        assert_eq!(
            doc["paths"][&item]["patch"]["x-kubernetes-group-version-kind"],
            gvk(r),
            "{item}"
        );
    }
}

/// A minimal reading of gnostic's messages, written from the field numbers, to check the
/// encoder end to end.
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Document {
        #[prost(string, tag = "1")]
        pub swagger: String,
        #[prost(message, optional, tag = "8")]
        pub paths: Option<Paths>,
        #[prost(message, optional, tag = "9")]
        pub definitions: Option<Definitions>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Paths {
        #[prost(message, repeated, tag = "2")]
        pub path: Vec<NamedPathItem>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedPathItem {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<PathItem>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PathItem {
        #[prost(message, optional, tag = "8")]
        pub patch: Option<Operation>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Operation {
        #[prost(string, repeated, tag = "7")]
        pub consumes: Vec<String>,
        #[prost(message, repeated, tag = "13")]
        pub vendor_extension: Vec<NamedAny>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Definitions {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedSchema {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Schema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Schema {
        #[prost(string, tag = "1")]
        pub r#ref: String,
        #[prost(string, repeated, tag = "19")]
        pub required: Vec<String>,
        #[prost(message, optional, tag = "22")]
        pub r#type: Option<TypeItem>,
        #[prost(message, optional, tag = "23")]
        pub items: Option<ItemsItem>,
        #[prost(message, optional, tag = "25")]
        pub properties: Option<Definitions>,
        #[prost(message, repeated, tag = "31")]
        pub vendor_extension: Vec<NamedAny>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeItem {
        #[prost(string, repeated, tag = "1")]
        pub value: Vec<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ItemsItem {
        #[prost(message, repeated, tag = "1")]
        pub schema: Vec<Schema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedAny {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Any>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "2")]
        pub yaml: String,
    }
}

#[test]
fn v2_protobuf_decodes_to_the_json_document() {
    use prost::Message as _;
    let doc = pb::Document::decode(v2_protobuf().as_slice()).unwrap();
    assert_eq!(doc.swagger, "2.0");
    let defs = doc.definitions.unwrap().additional_properties;
    assert_eq!(
        defs.len(),
        v2_json()["definitions"].as_object().unwrap().len()
    );
    let dep = defs
        .iter()
        .find(|d| d.name == "io.k8s.api.apps.v1.Deployment")
        .unwrap()
        .value
        .clone()
        .unwrap();
    let gvk = dep
        .vendor_extension
        .iter()
        .find(|e| e.name == "x-kubernetes-group-version-kind")
        .unwrap();
    let parsed: Value = serde_json::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
    assert_eq!(
        parsed,
        json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
    );
    let props = dep.properties.unwrap().additional_properties;
    let spec = props
        .iter()
        .find(|p| p.name == "spec")
        .unwrap()
        .value
        .clone()
        .unwrap();
    assert_eq!(
        spec.r#ref,
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );
    let pod_spec = defs
        .iter()
        .find(|d| d.name == "io.k8s.api.core.v1.PodSpec")
        .unwrap()
        .value
        .clone()
        .unwrap();
    let containers = pod_spec
        .properties
        .unwrap()
        .additional_properties
        .into_iter()
        .find(|p| p.name == "containers")
        .unwrap()
        .value
        .unwrap();
    assert_eq!(containers.r#type.unwrap().value, vec!["array"]);
    assert_eq!(
        containers.items.unwrap().schema[0].r#ref,
        "#/definitions/io.k8s.api.core.v1.Container"
    );
    assert!(containers
        .vendor_extension
        .iter()
        .any(|e| e.name == "x-kubernetes-patch-merge-key"
            && e.value.as_ref().unwrap().yaml == "\"name\""));
    let container = defs
        .iter()
        .find(|d| d.name == "io.k8s.api.core.v1.Container")
        .unwrap()
        .value
        .clone()
        .unwrap();
    assert_eq!(container.required, vec!["name"]);
    let path = doc
        .paths
        .unwrap()
        .path
        .into_iter()
        .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        .unwrap();
    let patch = path.value.unwrap().patch.unwrap();
    assert!(patch
        .consumes
        .contains(&"application/strategic-merge-patch+json".to_string()));
    assert!(patch
        .vendor_extension
        .iter()
        .any(|e| e.name == "x-kubernetes-group-version-kind"));
}
