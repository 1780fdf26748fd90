//! Store tests: revisions, preconditions, watches (resume, compaction), restart and
//! refusal of a corrupt directory.

use std::time::Duration;

use serde_json::json;

use super::*;

fn rv(v: &Value) -> u64 {
    skiff_api::meta::resource_version(v)
        .unwrap()
        .parse()
        .unwrap()
}

async fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

#[tokio::test]
async fn every_write_bumps_one_global_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let a = s
        .create(
            "/registry/core/pods/ns/a",
            json!({"metadata": {"name": "a"}}),
        )
        .await
        .unwrap();
    let b = s
        .create(
            "/registry/core/pods/ns/b",
            json!({"metadata": {"name": "b"}}),
        )
        .await
        .unwrap();
    assert_eq!(rv(&a), 1);
    assert_eq!(rv(&b), 2);
    let a2 = s
        .update(
            "/registry/core/pods/ns/a",
            (*a).clone(),
            Precondition::Revision(1),
        )
        .await
        .unwrap();
    assert_eq!(rv(&a2), 3);
    let gone = s
        .delete("/registry/core/pods/ns/b", Precondition::Exists)
        .await
        .unwrap();
    assert_eq!(rv(&gone), 4, "a delete is stamped with its own revision");
    assert_eq!(s.revision(), 4);
    assert!(s.get("/registry/core/pods/ns/b").is_none());
}

#[tokio::test]
async fn preconditions_give_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let k = "/registry/core/configmaps/ns/c";
    s.create(k, json!({"metadata": {"name": "c"}}))
        .await
        .unwrap();
    assert!(matches!(
        s.create(k, json!({})).await,
        Err(StoreError::AlreadyExists)
    ));
    assert!(matches!(
        s.update(k, json!({}), Precondition::Revision(99)).await,
        Err(StoreError::Conflict { current: 1 })
    ));
    assert!(matches!(
        s.update(
            "/registry/core/configmaps/ns/x",
            json!({}),
            Precondition::Exists
        )
        .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete("/registry/core/configmaps/ns/x", Precondition::Exists)
            .await,
        Err(StoreError::NotFound)
    ));
    // Failed writes consume no revision.
    assert_eq!(s.revision(), 1);
}

#[tokio::test]
async fn concurrent_writers_share_commits_and_get_distinct_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let o = s
                .create(&format!("/registry/core/configmaps/ns/c{i}"), json!({}))
                .await
                .unwrap();
            rv(&o)
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs.sort();
    assert_eq!(revs, (1..=200).collect::<Vec<_>>());
}

#[tokio::test]
async fn list_pages_in_key_order_within_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    for n in ["b", "a", "c"] {
        s.create(&key("core", "pods", Some("ns1"), n), json!({"n": n}))
            .await
            .unwrap();
    }
    s.create(&key("core", "pods", Some("ns10"), "z"), json!({}))
        .await
        .unwrap();
    let (items, rev, more) = s.list(&prefix("core", "pods", Some("ns1")), None, Some(2));
    assert_eq!(rev, 4);
    assert!(more);
    let names: Vec<&str> = items
        .iter()
        .map(|(_, v)| v["n"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    let (rest, _, more) = s.list(
        &prefix("core", "pods", Some("ns1")),
        Some(&items[1].0),
        Some(2),
    );
    assert!(!more);
    assert_eq!(rest.len(), 1, "ns10 must not leak into ns1");
    assert_eq!(s.list(&prefix("core", "pods", None), None, None).0.len(), 4);
}

#[tokio::test]
async fn watch_snapshot_then_live_and_resume_from_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let p = prefix("core", "pods", Some("ns"));
    s.create(&key("core", "pods", Some("ns"), "a"), json!({}))
        .await
        .unwrap();
    let mut w = s.watch(&p, WatchFrom::Snapshot).unwrap();
    let e = w.next().await.unwrap();
    assert_eq!((e.kind, e.rev), (EventType::Added, 1));
    s.create(&key("core", "pods", Some("other"), "x"), json!({}))
        .await
        .unwrap();
    s.delete(&key("core", "pods", Some("ns"), "a"), Precondition::Exists)
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.kind, e.rev),
        (EventType::Deleted, 3),
        "other namespaces are filtered out"
    );

    // Resume from revision 1: only what came after.
    let mut w2 = s
        .watch(&prefix("core", "pods", None), WatchFrom::After(1))
        .unwrap();
    assert_eq!(w2.next().await.unwrap().rev, 2);
    assert_eq!(w2.next().await.unwrap().rev, 3);
}

#[tokio::test]
async fn compacted_revisions_expire() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        max_events: 5,
        min_events: 5,
        window: Duration::from_secs(3600),
    };
    let s = Store::open(dir.path(), opts).unwrap();
    for i in 0..20 {
        s.create(&format!("/registry/core/configmaps/ns/c{i}"), json!({}))
            .await
            .unwrap();
    }
    assert_eq!(s.compacted_revision(), 15);
    assert!(matches!(
        s.watch("/registry/", WatchFrom::After(3)),
        Err(StoreError::Expired { .. })
    ));
    let mut w = s.watch("/registry/", WatchFrom::After(15)).unwrap();
    assert_eq!(w.next().await.unwrap().rev, 16);
}

#[tokio::test]
async fn objects_revisions_and_log_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path()).await;
        s.create(
            "/registry/core/namespaces/a",
            json!({"metadata": {"name": "a"}}),
        )
        .await
        .unwrap();
        s.create(
            "/registry/core/namespaces/b",
            json!({"metadata": {"name": "b"}}),
        )
        .await
        .unwrap();
        s.delete("/registry/core/namespaces/b", Precondition::Exists)
            .await
            .unwrap();
        s.close().await;
    }
    let s = open(dir.path()).await;
    assert_eq!(s.revision(), 3);
    assert_eq!(rv(&s.get("/registry/core/namespaces/a").unwrap()), 1);
    assert!(s.get("/registry/core/namespaces/b").is_none());
    let mut w = s.watch("/registry/", WatchFrom::After(1)).unwrap();
    let e = w.next().await.unwrap();
    assert_eq!((e.kind, e.rev), (EventType::Added, 2));
    let e = w.next().await.unwrap();
    assert_eq!((e.kind, e.rev), (EventType::Deleted, 3));
    let next = s
        .create("/registry/core/namespaces/c", json!({}))
        .await
        .unwrap();
    assert_eq!(rv(&next), 4, "revisions continue after a restart");
}

#[tokio::test]
async fn a_directory_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("conf"), b"this is not sled").unwrap();
    std::fs::write(dir.path().join("db"), vec![0xffu8; 4096]).unwrap();
    match Store::open(dir.path(), StoreOptions::default()) {
        Err(StoreError::Corrupt { .. }) | Err(StoreError::Open { .. }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a garbage directory must not open"),
    }
}

#[tokio::test]
async fn close_then_reopen_never_trips_over_the_lock() {
    // CI once failed here: sled's helper threads still held the lock file right after
    // `close`, so the reopen got EWOULDBLOCK.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20u64 {
        let s = open(dir.path()).await;
        s.create(&format!("/registry/core/namespaces/n{i}"), json!({}))
            .await
            .unwrap();
        assert_eq!(s.revision(), i + 1);
        s.close().await;
    }
}

#[tokio::test]
async fn a_directory_in_use_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path()).await;
    match Store::open(dir.path(), StoreOptions::default()) {
        Err(StoreError::Open { reason, .. }) => {
            assert!(reason.contains("another skiff server"), "{reason}")
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a second store opened a directory that is in use"),
    }
}
