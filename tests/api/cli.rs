//! The `tessera` binary: client and key commands on the database, exit codes.

use serde_json::Value;

use crate::both;
use crate::common::{Backend, spawn_app};

async fn clients_made_by_the_cli_work_at_the_token_endpoint(backend: Backend) {
    let app = spawn_app(backend).await;
    let file = app.env.keys_dir.with_file_name("client.json");
    std::fs::write(
        &file,
        r#"{"client_name": "cli", "grant_types": ["client_credentials"], "scope": "api:read"}"#,
    )
    .unwrap();
    let out = app.cli(&[
        "client",
        "create",
        "--metadata",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    assert_eq!(
        app.token_basic(id, secret, &[("grant_type", "client_credentials")])
            .await
            .status(),
        200
    );

    let list: Value =
        serde_json::from_slice(&app.cli(&["client", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["clients"][0]["client_id"], id);
    assert!(list["clients"][0].get("client_secret").is_none());
    let table = String::from_utf8(app.cli(&["client", "list"]).stdout).unwrap();
    assert!(table.contains(id) && table.contains("CLIENT_ID"));

    let rotated: Value =
        serde_json::from_slice(&app.cli(&["client", "rotate-secret", id, "--json"]).stdout)
            .unwrap();
    let new = rotated["client_secret"].as_str().unwrap();
    // Another process changed the row: this server sees it within a second.
    app.eventually(|| async {
        app.token_basic(id, secret, &[("grant_type", "client_credentials")])
            .await
            .status()
            == 401
    })
    .await;
    assert_eq!(
        app.token_basic(id, new, &[("grant_type", "client_credentials")])
            .await
            .status(),
        200
    );

    assert!(app.cli(&["client", "delete", id]).status.success());
    let missing = app.cli(&["client", "show", id]);
    assert_eq!(missing.status.code(), Some(1));
}
both!(clients_made_by_the_cli_work_at_the_token_endpoint);

async fn bad_metadata_and_bad_configuration_exit_with_2(backend: Backend) {
    let app = spawn_app(backend).await;
    let file = app.env.keys_dir.with_file_name("bad.json");
    std::fs::write(&file, r#"{"grant_types": ["implicit"]}"#).unwrap();
    let out = app.cli(&["client", "create", "--metadata", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_client_metadata"));

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    let out = cmd
        .arg("migrate")
        .env_clear()
        .env("TESSERA_ISSUER", "http://id.example.com")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TESSERA_ISSUER") && stderr.lines().count() == 1,
        "{stderr}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["keys", "rotate", "--retire-old"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--retire-old needs --now");
}
both!(bad_metadata_and_bad_configuration_exit_with_2);
