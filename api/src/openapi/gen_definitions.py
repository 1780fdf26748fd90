#!/usr/bin/env python3
"""Generates definitions.json: the OpenAPI schemas of every kind skiff serves.

Why generated: the `k8s-openapi` crate carries each type's schema (behind its `schemars`
feature, which the workspace does not build); reading them from its source keeps the
build light. Descriptions are kept so `kubectl explain` has something to say; `$ref`s point at
`#/definitions/<name>` and are rewritten for OpenAPI v3 at run time. Run again after
bumping k8s-openapi:

    python3 api/src/openapi/gen_definitions.py > api/src/openapi/definitions.json
"""
import glob
import json
import os
import re
import sys

# The cargo registry checkout that holds both crates (cargo fetch brings them).
REG = next(d for d in glob.glob(os.path.expanduser("~/.cargo/registry/src/*/"))
           if os.path.isdir(os.path.join(d, "k8s-pb-0.9.0")) and os.path.isdir(os.path.join(d, "k8s-openapi-0.29.0")))
OA = os.path.join(REG, "k8s-openapi-0.29.0/src/v1_33")
# The Go comment markers (`+patchMergeKey=name`) survive in k8s-pb's doc comments.
PB = os.path.join(REG, "k8s-pb-0.9.0/src")

ROOTS = ["io.k8s.api.core.v1." + k for k in [
    "Namespace", "Node", "Pod", "Service", "Endpoints", "ConfigMap", "Secret", "Event",
    "ServiceAccount", "Binding"]] + [
    "io.k8s.api.apps.v1.Deployment", "io.k8s.api.apps.v1.ReplicaSet",
    "io.k8s.api.discovery.v1.EndpointSlice", "io.k8s.api.events.v1.Event",
    "io.k8s.api.coordination.v1.Lease", "io.k8s.api.networking.v1.Ingress",
    "io.k8s.api.networking.v1.IngressClass", "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.policy.v1.Eviction", "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
]

SUB_BLOCK = re.compile(
    r'\(\{\s*let mut schema_obj = __gen\.subschema_for::<([\w:]+)>\(\);.*?schema_obj\s*\}\)', re.S)
SUB_CALL = re.compile(r'\(?__gen\.subschema_for::<([\w:]+)>\(\)\)?')


def patch_markers(name):
    """{normalised field name: {extension: value}} for definition `name`, from k8s-pb."""
    module, _, short = name[len("io.k8s."):].rpartition(".")
    path = os.path.join(PB, *module.split("."), "mod.rs")
    if not os.path.exists(path):
        return {}
    m = re.search(r'pub struct %s \{(.*?)\n\}' % short, open(path).read(), re.S)
    if not m:
        return {}
    out = {}
    for f in re.finditer(r'((?:\s*///[^\n]*\n)*)\s*#\[prost\([^\]]*\)\]\s*pub (?:r#)?(\w+):', m.group(1)):
        doc, field = f.group(1), f.group(2).lower().replace("_", "")
        ext = {}
        for marker, key in [("patchMergeKey", "x-kubernetes-patch-merge-key"),
                            ("patchStrategy", "x-kubernetes-patch-strategy"),
                            ("listType", "x-kubernetes-list-type")]:
            v = re.search(r'/// \+%s=([\w,-]+)' % marker, doc)
            if v:
                ext[key] = v.group(1)
        keys = re.findall(r'/// \+listMapKey=(\w+)', doc)
        if keys:
            ext["x-kubernetes-list-map-keys"] = keys
        if ext:
            out[field] = ext
    return out


def main():
    # Rust path (crate::api::core::v1::Pod) -> (schema name, macro body)
    types = {}
    for path in glob.glob(os.path.join(OA, "**/*.rs"), recursive=True):
        src = open(path).read()
        m = re.search(r'impl crate::schemars::JsonSchema for (\w+) \{\s*fn schema_name\(\) -> '
                      r'std::borrow::Cow<\'static, str> \{\s*"([^"]+)"\.into\(\)', src)
        if not m:
            continue
        body = re.search(r'crate::schemars::json_schema!\((\{.*?\})\)\s*\}\s*\}', src, re.S)
        if not body:
            sys.exit("no schema body in " + path)
        module = os.path.relpath(os.path.dirname(path), OA).replace(os.sep, "::")
        types["crate::%s::%s" % (module, m.group(1))] = (m.group(2), body.group(1))
    by_name = {name: body for name, body in types.values()}

    def ref(m):
        name = types[m.group(1)][0]
        return '{"$ref": "#/definitions/%s"}' % name

    def parse(name):
        text = SUB_BLOCK.sub(ref, by_name[name])
        text = SUB_CALL.sub(ref, text)
        text = re.sub(r',(\s*[}\]])', r'\1', text)
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            sys.exit("%s: %s\n%s" % (name, e, text[:2000]))

    out, todo = {}, list(ROOTS)
    while todo:
        n = todo.pop()
        if n in out:
            continue
        schema = parse(n)
        # Upstream does not require metadata on objects; k8s-openapi's typed structs do.
        if "required" in schema:
            schema["required"] = [r for r in schema["required"] if r != "metadata"] or None
            if schema["required"] is None:
                del schema["required"]
        markers = patch_markers(n)
        for prop, sub in schema.get("properties", {}).items():
            sub.update(markers.get(prop.lower(), {}))
        out[n] = schema
        todo.extend(re.findall(r'"#/definitions/([^"]+)"', json.dumps(schema)))
    print(json.dumps(dict(sorted(out.items())), separators=(",", ":")))


main()
