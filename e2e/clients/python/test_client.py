#!/usr/bin/env python3
"""The official Python client (PyPI `kubernetes`, pinned in scripts/install-deps.sh)
against a real `skiff server`, the way users' scripts and operators drive a cluster:
typed CRUD of Namespaces, ConfigMaps, Pods, Services and Deployments; label and field
selectors; pagination with limit/continue and bad or expired tokens; watch from a
resourceVersion, resume after a disconnect and the 410 Gone path; JSON, merge,
strategic merge patches and server-side apply; the status and scale subresources; and
errors carrying the right Status reason and details.

usage: test_client.py --kubeconfig MAIN [--gone-kubeconfig SMALL_WINDOW] --results FILE

MAIN is a server with its controllers. SMALL_WINDOW is a server started with a tiny
watch history (`--event-window-seconds 0 --event-min-kept 1`), so that any old
resourceVersion has been compacted: that is where 410 is exercised.

Each check writes one line to FILE: `ok<TAB>name`, `skip<TAB>name<TAB>why` or
`FAIL<TAB>name<TAB>detail` (newlines in the detail written as \\n); e2e/clients.sh
turns them into its tally. Exits 1 when a check failed.
"""

import argparse
import json
import random
import string
import sys
import time
import traceback

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

RESULTS = []


class Skip(Exception):
    """A check that cannot run against this server yet (said why, not counted failed)."""


def check(name):
    def wrap(fn):
        RESULTS.append((name, fn))
        return fn

    return wrap


def status_of(e):
    """The Kubernetes Status object carried in an ApiException's body."""
    try:
        return json.loads(e.body)
    except (TypeError, ValueError):
        raise AssertionError(f"error body is not a Status: {e.body!r}")


def expect_api_error(fn, code, reason):
    """Runs fn, which must fail with HTTP `code` and Status reason `reason`; returns the
    Status body for further checks."""
    try:
        got = fn()
    except ApiException as e:
        st = status_of(e)
        assert e.status == code, f"HTTP {e.status}, expected {code}: {e.body}"
        assert st.get("kind") == "Status", st
        assert st.get("code") == code, st
        assert st.get("reason") == reason, f"reason {st.get('reason')!r}, expected {reason!r}: {st}"
        return st
    raise AssertionError(f"expected {code} {reason}, the call succeeded: {got}")


def eventually(fn, what, secs=30):
    end = time.time() + secs
    while True:
        last = fn()
        if last:
            return last
        if time.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def suffix():
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(6))


def cm(name, labels=None, data=None):
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {}),
        data=data if data is not None else {"k": "v"},
    )


def deployment(name, replicas=1):
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
            ),
        ),
    )


def raw_patch(api_client, path, body, content_type, response_type, query=None):
    """PATCH with an explicit Content-Type: the typed methods pick JSON patch for a list
    and strategic merge for a dict, and offer no way to ask for a merge patch or apply."""
    return api_client.call_api(
        path,
        "PATCH",
        query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        response_type=response_type,
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )


def retry_on_conflict(fn, attempts=10):
    """Controllers write status concurrently; a client re-reads and retries on 409, as
    client-go's RetryOnConflict does."""
    for i in range(attempts):
        try:
            return fn()
        except ApiException as e:
            if e.status != 409 or i == attempts - 1:
                raise
            time.sleep(0.1)


class Ctx:
    def __init__(self, kubeconfig, gone_kubeconfig):
        self.api_client = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.ns = "py-" + suffix()
        self.gone = None
        if gone_kubeconfig:
            gc = config.new_client_from_config(config_file=gone_kubeconfig)
            self.gone = (gc, client.CoreV1Api(gc))


# ---------------------------------------------------------------- CRUD


@check("namespaces: create, read, label-select, patch, delete")
def t_namespaces(c):
    name = "py-ns-" + suffix()
    made = c.core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"suite": "py"}))
    )
    assert made.metadata.uid and made.metadata.resource_version, made.metadata
    assert c.core.read_namespace(name).status.phase == "Active"
    listed = c.core.list_namespace(label_selector=f"kubernetes.io/metadata.name={name}")
    assert [n.metadata.name for n in listed.items] == [name], listed.items
    patched = c.core.patch_namespace(name, {"metadata": {"labels": {"extra": "yes"}}})
    assert patched.metadata.labels["extra"] == "yes"
    assert patched.metadata.labels["suite"] == "py"
    c.core.delete_namespace(name)

    def gone():
        try:
            n = c.core.read_namespace(name)
            assert n.status.phase == "Terminating", n.status
            return False
        except ApiException as e:
            assert e.status == 404, e
            return True

    eventually(gone, f"namespace {name} to be finalized and removed", secs=90)


@check("configmaps: create, read, replace, delete")
def t_configmaps(c):
    made = c.core.create_namespaced_config_map(c.ns, cm("crud", {"a": "1"}))
    got = c.core.read_namespaced_config_map("crud", c.ns)
    assert got.data == {"k": "v"} and got.metadata.uid == made.metadata.uid
    got.data["k"] = "v2"
    replaced = c.core.replace_namespaced_config_map("crud", c.ns, got)
    assert replaced.data["k"] == "v2"
    assert int(replaced.metadata.resource_version) > int(made.metadata.resource_version)
    c.core.delete_namespaced_config_map("crud", c.ns)
    expect_api_error(lambda: c.core.read_namespaced_config_map("crud", c.ns), 404, "NotFound")


@check("pods: create (stays Pending without nodes), read, replace labels, delete")
def t_pods(c):
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p", labels={"app": "p"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )
    made = c.core.create_namespaced_pod(c.ns, pod)
    assert made.status.phase == "Pending", made.status
    assert made.spec.containers[0].image == "busybox"

    def relabel():
        # The scheduler writes the pod's Unschedulable condition meanwhile: re-read.
        got = c.core.read_namespaced_pod("p", c.ns)
        got.metadata.labels["touched"] = "yes"
        return c.core.replace_namespaced_pod("p", c.ns, got)

    replaced = retry_on_conflict(relabel)
    assert replaced.metadata.labels == {"app": "p", "touched": "yes"}
    c.core.delete_namespaced_pod("p", c.ns, grace_period_seconds=0)

    def gone():
        try:
            c.core.read_namespaced_pod("p", c.ns)
            return False
        except ApiException as e:
            assert e.status == 404, e
            return True

    eventually(gone, "the pod to be removed")


@check("services: create gets a ClusterIP, read, replace, delete")
def t_services(c):
    svc = client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(
            selector={"app": "web"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
        ),
    )
    made = c.core.create_namespaced_service(c.ns, svc)
    ip = made.spec.cluster_ip
    assert ip and ip.startswith("10."), ip
    assert made.spec.type == "ClusterIP"
    got = c.core.read_namespaced_service("web", c.ns)
    got.spec.ports[0].port = 81
    replaced = c.core.replace_namespaced_service("web", c.ns, got)
    assert replaced.spec.ports[0].port == 81
    assert replaced.spec.cluster_ip == ip, "the ClusterIP must not change on update"
    c.core.delete_namespaced_service("web", c.ns)
    expect_api_error(lambda: c.core.read_namespaced_service("web", c.ns), 404, "NotFound")


@check("deployments: create, read, replace, delete")
def t_deployments(c):
    made = c.apps.create_namespaced_deployment(c.ns, deployment("crud", 1))
    assert made.metadata.generation == 1
    got = c.apps.read_namespaced_deployment("crud", c.ns)
    got.spec.template.spec.containers[0].image = "busybox:1.36"
    replaced = retry_on_conflict(
        lambda: c.apps.replace_namespaced_deployment("crud", c.ns, got)
    )
    assert replaced.spec.template.spec.containers[0].image == "busybox:1.36"
    assert replaced.metadata.generation == 2, replaced.metadata.generation
    c.apps.delete_namespaced_deployment("crud", c.ns)

    def gone():
        try:
            c.apps.read_namespaced_deployment("crud", c.ns)
            return False
        except ApiException as e:
            assert e.status == 404, e
            return True

    eventually(gone, "the deployment to be removed")


# ---------------------------------------------------------------- lists


@check("list: label selectors (=, !=, in, notin, exists, !exists)")
def t_label_selectors(c):
    for i in range(6):
        labels = {"sel": "yes", "tier": "front" if i % 2 == 0 else "back"}
        if i == 5:
            del labels["tier"]
        c.core.create_namespaced_config_map(c.ns, cm(f"sel{i}", labels))

    def names(sel):
        items = c.core.list_namespaced_config_map(c.ns, label_selector=sel).items
        return sorted(i.metadata.name for i in items)

    assert names("sel=yes,tier=front") == ["sel0", "sel2", "sel4"], names("sel=yes,tier=front")
    assert names("sel=yes,tier!=front") == ["sel1", "sel3", "sel5"]
    assert names("tier in (front,back)") == ["sel0", "sel1", "sel2", "sel3", "sel4"]
    assert names("sel,tier notin (front)") == ["sel1", "sel3", "sel5"]
    assert names("sel,!tier") == ["sel5"]
    expect_api_error(
        lambda: c.core.list_namespaced_config_map(c.ns, label_selector="tier in (front"),
        400,
        "BadRequest",
    )


@check("list: field selectors (metadata.name, metadata.namespace, status.phase, spec.nodeName)")
def t_field_selectors(c):
    c.core.create_namespaced_config_map(c.ns, cm("field-a"))
    c.core.create_namespaced_config_map(c.ns, cm("field-b"))
    one = c.core.list_namespaced_config_map(c.ns, field_selector="metadata.name=field-a").items
    assert [i.metadata.name for i in one] == ["field-a"], one
    others = c.core.list_namespaced_config_map(c.ns, field_selector="metadata.name!=field-a").items
    assert "field-b" in [i.metadata.name for i in others]
    assert "field-a" not in [i.metadata.name for i in others]
    everywhere = c.core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={c.ns},metadata.name=field-b"
    ).items
    assert [(i.metadata.namespace, i.metadata.name) for i in everywhere] == [(c.ns, "field-b")]

    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="fs"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )
    c.core.create_namespaced_pod(c.ns, pod)
    pending = c.core.list_namespaced_pod(c.ns, field_selector="status.phase=Pending").items
    assert "fs" in [p.metadata.name for p in pending]
    unbound = c.core.list_namespaced_pod(c.ns, field_selector="spec.nodeName=").items
    assert "fs" in [p.metadata.name for p in unbound]
    running = c.core.list_namespaced_pod(c.ns, field_selector="status.phase=Running").items
    assert running == [], running
    # A field the resource does not support is refused, as upstream does.
    expect_api_error(
        lambda: c.core.list_namespaced_config_map(c.ns, field_selector="data.k=v"),
        400,
        "BadRequest",
    )


@check("list: resourceVersion=0 and NotOlderThan; delete_collection by label")
def t_list_semantics_and_delete_collection(c):
    for i in range(3):
        c.core.create_namespaced_config_map(c.ns, cm(f"dc{i}", {"dc": "yes" if i < 2 else "no"}))
    rv0 = c.core.list_namespaced_config_map(c.ns, label_selector="dc", resource_version="0")
    assert len(rv0.items) == 3, rv0.items
    newer = c.core.list_namespaced_config_map(
        c.ns,
        label_selector="dc",
        resource_version=rv0.metadata.resource_version,
        resource_version_match="NotOlderThan",
    )
    assert len(newer.items) == 3
    c.core.delete_collection_namespaced_config_map(c.ns, label_selector="dc=yes")
    left = c.core.list_namespaced_config_map(c.ns, label_selector="dc").items
    assert [i.metadata.name for i in left] == ["dc2"], left


@check("list: pagination with limit and continue, invalid continue token -> 400")
def t_pagination(c):
    for i in range(7):
        c.core.create_namespaced_config_map(c.ns, cm(f"page{i}", {"page": "yes"}))
    seen, pages, token = [], [], None
    while True:
        kw = {"label_selector": "page=yes", "limit": 3}
        if token:
            kw["_continue"] = token
        page = c.core.list_namespaced_config_map(c.ns, **kw)
        assert page.metadata.resource_version, page.metadata
        pages.append(len(page.items))
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert pages == [3, 3, 1], pages
    assert sorted(seen) == [f"page{i}" for i in range(7)], seen
    expect_api_error(
        lambda: c.core.list_namespaced_config_map(c.ns, limit=3, _continue="not-a-token"),
        400,
        "BadRequest",
    )


@check("list: an expired continue token -> 410 Expired, a new list recovers")
def t_expired_continue(c):
    if not c.gone:
        raise Skip("no small-window server given (--gone-kubeconfig)")
    gc, core = c.gone
    ns = "default"
    prefix = "exp-" + suffix()
    for i in range(3):
        core.create_namespaced_config_map(ns, cm(f"{prefix}{i}", {"exp": prefix}))
    page = core.list_namespaced_config_map(ns, label_selector=f"exp={prefix}", limit=1)
    token = page.metadata._continue
    assert token, "a first page of 1 out of 3 has a continue token"
    # Two more writes push the first page's revision out of the tiny window.
    for i in range(2):
        core.patch_namespaced_config_map(f"{prefix}0", ns, {"data": {"n": str(i)}})
    st = expect_api_error(
        lambda: core.list_namespaced_config_map(
            ns, label_selector=f"exp={prefix}", limit=1, _continue=token
        ),
        410,
        "Expired",
    )
    assert "continue" in st.get("message", ""), st
    fresh = core.list_namespaced_config_map(ns, label_selector=f"exp={prefix}")
    assert len(fresh.items) == 3


# ---------------------------------------------------------------- watch


def next_events(stream, n):
    out = []
    for ev in stream:
        if ev["type"] == "BOOKMARK":
            continue
        out.append(ev)
        if len(out) == n:
            break
    return out


@check("watch: from a resourceVersion sees MODIFIED then DELETED")
def t_watch_from_rv(c):
    made = c.core.create_namespaced_config_map(c.ns, cm("w1"))
    rv = made.metadata.resource_version
    c.core.patch_namespaced_config_map("w1", c.ns, {"data": {"k": "changed"}})
    c.core.delete_namespaced_config_map("w1", c.ns)
    w = watch.Watch()
    evs = next_events(
        w.stream(
            c.core.list_namespaced_config_map,
            c.ns,
            resource_version=rv,
            field_selector="metadata.name=w1",
            timeout_seconds=10,
        ),
        2,
    )
    w.stop()
    assert [e["type"] for e in evs] == ["MODIFIED", "DELETED"], [e["type"] for e in evs]
    assert evs[0]["object"].data["k"] == "changed"
    assert isinstance(evs[0]["object"], client.V1ConfigMap)


@check("watch: resume after a disconnect from the last resourceVersion, nothing lost or repeated")
def t_watch_resume(c):
    made = c.core.create_namespaced_config_map(c.ns, cm("resume", {"w": "resume"}))
    w = watch.Watch()
    stream = w.stream(
        c.core.list_namespaced_config_map,
        c.ns,
        label_selector="w=resume",
        resource_version=made.metadata.resource_version,
        timeout_seconds=10,
    )
    c.core.patch_namespaced_config_map("resume", c.ns, {"data": {"n": "1"}})
    first = next_events(stream, 1)
    w.stop()
    stream.close()  # the disconnect
    last_rv = first[0]["object"].metadata.resource_version
    assert first[0]["object"].data["n"] == "1"
    # Changes while no one watches.
    for n in ("2", "3"):
        c.core.patch_namespaced_config_map("resume", c.ns, {"data": {"n": n}})
    w2 = watch.Watch()
    evs = next_events(
        w2.stream(
            c.core.list_namespaced_config_map,
            c.ns,
            label_selector="w=resume",
            resource_version=last_rv,
            timeout_seconds=10,
        ),
        2,
    )
    w2.stop()
    assert [e["object"].data["n"] for e in evs] == ["2", "3"], [e["raw_object"] for e in evs]
    assert all(e["type"] == "MODIFIED" for e in evs)


@check("watch: from a compacted resourceVersion -> 410, a re-list and re-watch recover")
def t_watch_gone(c):
    if not c.gone:
        raise Skip("no small-window server given (--gone-kubeconfig)")
    gc, core = c.gone
    ns = "default"
    name = "gone-" + suffix()
    old = core.create_namespaced_config_map(ns, cm(name)).metadata.resource_version
    for i in range(2):
        core.patch_namespaced_config_map(name, ns, {"data": {"n": str(i)}})
    w = watch.Watch()
    try:
        for ev in w.stream(
            core.list_namespaced_config_map, ns, resource_version=old, timeout_seconds=5
        ):
            raise AssertionError(f"expected 410, got an event: {ev['type']}")
        raise AssertionError("expected 410, the watch ended quietly")
    except ApiException as e:
        assert e.status == 410, f"status {e.status}: {e.reason}"
        assert "Expired" in (e.reason or ""), e.reason
    # Recover as a reflector does: list, then watch from the list's revision.
    listed = core.list_namespaced_config_map(ns)
    assert name in [i.metadata.name for i in listed.items]
    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map,
        ns,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=10,
    )
    core.patch_namespaced_config_map(name, ns, {"data": {"n": "after"}})
    evs = next_events(stream, 1)
    w.stop()
    assert evs[0]["type"] == "MODIFIED" and evs[0]["object"].data["n"] == "after", evs


# ---------------------------------------------------------------- patches


@check("patch: JSON patch, merge patch and strategic merge patch of a Deployment")
def t_patches(c):
    c.apps.create_namespaced_deployment(c.ns, deployment("patch", 1))
    # JSON patch: the typed method sends application/json-patch+json for a list.
    jp = c.apps.patch_namespaced_deployment(
        "patch", c.ns, [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    )
    assert jp.spec.replicas == 3
    # Merge patch: a null removes a key.
    path = f"/apis/apps/v1/namespaces/{c.ns}/deployments/patch"
    raw_patch(
        c.api_client,
        path,
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        "application/merge-patch+json",
        "V1Deployment",
    )
    mp = raw_patch(
        c.api_client,
        path,
        {"metadata": {"labels": {"a": None}}},
        "application/merge-patch+json",
        "V1Deployment",
    )
    assert mp.metadata.labels == {"b": "2"}, mp.metadata.labels
    # Strategic merge: containers merge by name, so a new one is added beside "c".
    sm = c.apps.patch_namespaced_deployment(
        "patch",
        c.ns,
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}},
    )
    names = [k.name for k in sm.spec.template.spec.containers]
    assert names == ["side", "c"] or names == ["c", "side"], names
    # A merge patch replaces the list wholesale instead.
    mp2 = raw_patch(
        c.api_client,
        path,
        {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "busybox"}]}}}},
        "application/merge-patch+json",
        "V1Deployment",
    )
    assert [k.name for k in mp2.spec.template.spec.containers] == ["only"]
    # A JSON patch whose test op fails changes nothing and is refused as Invalid.
    expect_api_error(
        lambda: c.apps.patch_namespaced_deployment(
            "patch", c.ns, [{"op": "test", "path": "/spec/replicas", "value": 99}]
        ),
        422,
        "Invalid",
    )


@check("patch: ConfigMap, Service, Pod and Namespace with JSON and strategic merge patches")
def t_patches_other_kinds(c):
    c.core.create_namespaced_config_map(c.ns, cm("pcm"))
    got = c.core.patch_namespaced_config_map(
        "pcm", c.ns, [{"op": "add", "path": "/data/x", "value": "y"}]
    )
    assert got.data == {"k": "v", "x": "y"}
    svc = client.V1Service(
        metadata=client.V1ObjectMeta(name="psvc"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(name="http", port=80)]),
    )
    c.core.create_namespaced_service(c.ns, svc)
    # Service ports merge by port number under strategic merge.
    s = c.core.patch_namespaced_service(
        "psvc", c.ns, {"spec": {"ports": [{"name": "https", "port": 443}]}}
    )
    assert sorted(p.port for p in s.spec.ports) == [80, 443], s.spec.ports
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="ppod"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )
    c.core.create_namespaced_pod(c.ns, pod)
    p = c.core.patch_namespaced_pod("ppod", c.ns, {"metadata": {"annotations": {"x": "1"}}})
    assert p.metadata.annotations["x"] == "1"
    ns = c.core.patch_namespace(c.ns, [{"op": "add", "path": "/metadata/labels/patched", "value": "y"}])
    assert ns.metadata.labels["patched"] == "y"


@check("patch: server-side apply creates and updates with a field manager")
def t_server_side_apply(c):
    path = f"/api/v1/namespaces/{c.ns}/configmaps/ssa"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}}
    try:
        made = raw_patch(
            c.api_client,
            path,
            body,
            "application/apply-patch+yaml",
            "V1ConfigMap",
            query=[("fieldManager", "py-test")],
        )
    except ApiException as e:
        if e.status == 415:
            raise Skip("server answers 415 to application/apply-patch+yaml: server-side apply not implemented yet")
        raise
    assert made.data == {"a": "1"}, made.data
    managers = [m.manager for m in (made.metadata.managed_fields or [])]
    assert "py-test" in managers, managers
    body["data"] = {"a": "2", "b": "3"}
    again = raw_patch(
        c.api_client,
        path,
        body,
        "application/apply-patch+yaml",
        "V1ConfigMap",
        query=[("fieldManager", "py-test")],
    )
    assert again.data == {"a": "2", "b": "3"}, again.data
    # Apply without a field manager is refused, as upstream does.
    try:
        raw_patch(c.api_client, path, body, "application/apply-patch+yaml", "V1ConfigMap")
        raise AssertionError("apply without fieldManager must be refused")
    except ApiException as e:
        assert e.status in (400, 422), e


@check("dynamic client: discovery finds Deployments, get and list through it")
def t_dynamic(c):
    dyn = DynamicClient(c.api_client)
    deps = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deps.namespaced and deps.name == "deployments", deps
    c.apps.create_namespaced_deployment(c.ns, deployment("dyn", 1))
    got = deps.get(name="dyn", namespace=c.ns)
    assert got.spec.replicas == 1 and got.metadata.name == "dyn"
    listed = deps.get(namespace=c.ns, field_selector="metadata.name=dyn")
    assert listed.kind == "DeploymentList", listed.kind
    assert [i.metadata.name for i in listed.items] == ["dyn"]
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(body={"metadata": {"name": "dyn"}, "data": {"a": "b"}}, namespace=c.ns)
    assert cms.get(name="dyn", namespace=c.ns).data.a == "b"


# ---------------------------------------------------------------- subresources


@check("status subresource: replace and patch Deployment status; spec untouched")
def t_status(c):
    c.apps.create_namespaced_deployment(c.ns, deployment("st", 2))

    def replace():
        d = c.apps.read_namespaced_deployment_status("st", c.ns)
        d.status.observed_generation = 1
        d.status.collision_count = 7
        d.spec.replicas = 9  # ignored by /status
        return c.apps.replace_namespaced_deployment_status("st", c.ns, d)

    r = retry_on_conflict(replace)
    assert r.status.collision_count == 7, r.status
    assert r.spec.replicas == 2, "a status write must not change the spec"
    p = c.apps.patch_namespaced_deployment_status(
        "st", c.ns, {"status": {"collisionCount": 8}, "spec": {"replicas": 5}}
    )
    assert p.status.collision_count == 8, p.status
    assert p.spec.replicas == 2
    # And the main resource ignores status.
    m = c.apps.patch_namespaced_deployment("st", c.ns, {"status": {"collisionCount": 100}})
    assert m.status.collision_count != 100, m.status


@check("scale subresource: read, replace and patch a Deployment's scale")
def t_scale(c):
    c.apps.create_namespaced_deployment(c.ns, deployment("sc", 2))
    s = c.apps.read_namespaced_deployment_scale("sc", c.ns)
    assert s.kind == "Scale" and s.spec.replicas == 2, s
    assert s.status.selector == "app=sc", s.status

    def replace():
        cur = c.apps.read_namespaced_deployment_scale("sc", c.ns)
        cur.spec.replicas = 4
        return c.apps.replace_namespaced_deployment_scale("sc", c.ns, cur)

    assert retry_on_conflict(replace).spec.replicas == 4
    assert c.apps.read_namespaced_deployment("sc", c.ns).spec.replicas == 4
    p = c.apps.patch_namespaced_deployment_scale("sc", c.ns, {"spec": {"replicas": 1}})
    assert p.spec.replicas == 1
    assert c.apps.read_namespaced_deployment("sc", c.ns).spec.replicas == 1
    expect_api_error(lambda: c.apps.read_namespaced_deployment_scale("nope", c.ns), 404, "NotFound")


# ---------------------------------------------------------------- errors


@check("errors: NotFound 404 with details naming the object")
def t_not_found(c):
    st = expect_api_error(lambda: c.apps.read_namespaced_deployment("nope", c.ns), 404, "NotFound")
    d = st.get("details", {})
    assert d.get("name") == "nope" and d.get("kind") == "deployments" and d.get("group") == "apps", st
    assert st.get("message") == 'deployments.apps "nope" not found', st


@check("errors: AlreadyExists 409")
def t_already_exists(c):
    c.core.create_namespaced_config_map(c.ns, cm("dup"))
    st = expect_api_error(
        lambda: c.core.create_namespaced_config_map(c.ns, cm("dup")), 409, "AlreadyExists"
    )
    assert st.get("details", {}).get("name") == "dup", st


@check("errors: Conflict 409 on a stale resourceVersion")
def t_conflict(c):
    made = c.core.create_namespaced_config_map(c.ns, cm("stale"))
    made.data["k"] = "first"
    c.core.replace_namespaced_config_map("stale", c.ns, made)
    made.data["k"] = "second"
    st = expect_api_error(
        lambda: c.core.replace_namespaced_config_map("stale", c.ns, made), 409, "Conflict"
    )
    assert "the object has been modified" in st.get("message", ""), st
    assert c.core.read_namespaced_config_map("stale", c.ns).data["k"] == "first"


@check("errors: Invalid 422 names the field in details.causes")
def t_invalid(c):
    st = expect_api_error(
        lambda: c.core.create_namespaced_config_map(c.ns, cm("Bad_Name")), 422, "Invalid"
    )
    fields = [x.get("field") for x in st.get("details", {}).get("causes", [])]
    assert "metadata.name" in fields, st
    bad = deployment("neg", 1)
    bad.spec.replicas = -1
    st = expect_api_error(lambda: c.apps.create_namespaced_deployment(c.ns, bad), 422, "Invalid")
    fields = [x.get("field") for x in st.get("details", {}).get("causes", [])]
    assert "spec.replicas" in fields, st
    assert st.get("details", {}).get("kind") == "Deployment", st


# ---------------------------------------------------------------- driver


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--gone-kubeconfig")
    ap.add_argument("--results", required=True)
    args = ap.parse_args()
    c = Ctx(args.kubeconfig, args.gone_kubeconfig)
    failed = 0
    with open(args.results, "w") as out:
        try:
            c.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=c.ns)))
        except Exception:
            out.write("FAIL\tsetup: create the test namespace\t%s\n" % traceback.format_exc().replace("\n", "\\n"))
            return 1
        for name, fn in RESULTS:
            try:
                fn(c)
                out.write(f"ok\t{name}\n")
            except Skip as s:
                out.write(f"skip\t{name}\t{s}\n")
            except Exception:
                failed += 1
                detail = traceback.format_exc().strip().replace("\n", "\\n")
                out.write(f"FAIL\t{name}\t{detail}\n")
            out.flush()
        try:
            c.core.delete_namespace(c.ns)
        except ApiException:
            pass
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
