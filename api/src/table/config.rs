//! ConfigMap, Secret and ServiceAccount rows.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, age_col, arr_at, col, map_len, name, name_col, opt_str, Column};

pub(super) static CONFIGMAP_COLUMNS: &[Column] = &[
    name_col(),
    col(
        "Data",
        "string",
        "The number of keys in data and binaryData.",
    ),
    age_col(),
];

pub(super) static SECRET_COLUMNS: &[Column] = &[
    name_col(),
    col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "string", "The number of keys in data."),
    age_col(),
];

pub(super) static SERVICEACCOUNT_COLUMNS: &[Column] = &[
    name_col(),
    col(
        "Secrets",
        "string",
        "The number of secrets listed in the service account.",
    ),
    age_col(),
];

pub(super) fn configmap_cells(cm: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let keys = map_len(cm, "/data") + map_len(cm, "/binaryData");
    vec![json!(name(cm)), json!(keys), json!(age(cm, now))]
}

pub(super) fn secret_cells(s: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(s)),
        json!(opt_str(s, "/type").unwrap_or("Opaque")),
        json!(map_len(s, "/data")),
        json!(age(s, now)),
    ]
}

pub(super) fn serviceaccount_cells(sa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(sa)),
        json!(arr_at(sa, "/secrets").len()),
        json!(age(sa, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testutil::now;
    use super::*;

    #[test]
    fn configmap_counts_data_and_binary_data() {
        let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": "2024-05-01T11:20:00Z"},
                        "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AAE="}});
        assert_eq!(
            configmap_cells(&cm, now()),
            vec![json!("cfg"), json!(3), json!("40m")]
        );
    }

    #[test]
    fn secret_rows() {
        let s = json!({"metadata": {"name": "tls", "creationTimestamp": "2022-03-02T12:00:00Z"},
                       "type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eQ=="}});
        assert_eq!(
            secret_cells(&s, now()),
            vec![
                json!("tls"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("2y61d")
            ]
        ); // 791 days: years are 365 days long
        let plain = json!({"metadata": {"name": "p"}});
        assert_eq!(
            secret_cells(&plain, now())[1..3],
            [json!("Opaque"), json!(0)]
        );
    }

    #[test]
    fn serviceaccount_counts_secrets() {
        let sa = json!({"metadata": {"name": "default", "creationTimestamp": "2024-05-01T11:59:59Z"},
                        "secrets": [{"name": "default-token"}]});
        assert_eq!(
            serviceaccount_cells(&sa, now()),
            vec![json!("default"), json!(1), json!("1s")]
        );
        let none = json!({"metadata": {"name": "x"}});
        assert_eq!(serviceaccount_cells(&none, now())[1], 0);
    }
}
