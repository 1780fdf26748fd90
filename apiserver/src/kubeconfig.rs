//! Writing kubeconfig files that the real kubectl and client libraries use as they are.

use base64::Engine;

/// A kubeconfig for `server` trusting `ca_pem` and sending `token`.
pub fn render(cluster: &str, server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {cluster}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: {cluster}
  context:
    cluster: {cluster}
    user: {user}
    namespace: default
current-context: {cluster}
preferences: {{}}
"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn kubeconfig_is_valid_yaml_with_the_token() {
        let k = super::render("skiff", "https://127.0.0.1:6443", "PEM", "admin", "tok");
        let v: serde_json::Value = serde_yaml::from_str(&k).unwrap();
        assert_eq!(v["users"][0]["user"]["token"], "tok");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(v["current-context"], "skiff");
    }
}
