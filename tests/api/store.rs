//! The storage interface itself, on both databases: spending codes and
//! refresh tokens in batches (group commit), where one transaction holds
//! several redemptions, duplicates and replays at once.

use std::sync::Arc;

use tessera::config::Config;
use tessera::secret::{random_token, sha256_b64};
use tessera::store::group::{GroupCommit, GroupRead};
use tessera::store::{Family, Issued, RefreshRecord, Spend, SpendKind, Spent, Store};

use crate::both;
use crate::common::{Backend, TestApp};
use crate::login::{app_with_idp, code_for, web_client};

/// A second connection to the test server's database.
async fn open_store(app: &TestApp) -> Arc<dyn Store> {
    let mut vars = app.env.vars();
    vars.insert("TESSERA_ISSUER".into(), app.base.clone());
    let config = Config::from_sources(None, &vars).unwrap();
    tessera::store::connect(&config).await.unwrap()
}

/// What a code redemption issues: a new family and its first refresh token
/// (when `refresh`), and an access token `jti`. Returns the raw refresh hash.
async fn code_spend(store: &dyn Store, code: &str, refresh: bool) -> (Spend, Option<String>) {
    let hash = sha256_b64(code.as_bytes());
    let found = store.find_code(&hash).await.unwrap().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let family = Family {
        id: random_token(16),
        client_id: found.code.client_id.clone(),
        sub: found.user.sub.clone(),
        sid: found.code.sid.clone(),
        scope: found.code.scope.clone(),
        audience: found.code.audience.clone(),
        auth_time: found.code.auth_time,
        created_at: now,
        expires_at: now + 3600,
    };
    let token = RefreshRecord {
        token_hash: sha256_b64(random_token(32).as_bytes()),
        family_id: family.id.clone(),
        created_at: now,
        expires_at: now + 3600,
    };
    let token_hash = refresh.then(|| token.token_hash.clone());
    let issued = Issued {
        family: refresh.then_some(family),
        refresh: refresh.then_some(token),
        access_jti: random_token(16),
        access_exp: now + 600,
    };
    let spend = Spend {
        kind: SpendKind::Code,
        hash,
        now,
        issued: Some(issued),
    };
    (spend, token_hash)
}

/// Rotating the refresh token `hash` (a stored hash) of `family`.
fn refresh_spend(hash: &str, family: &str) -> (Spend, String) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let next = RefreshRecord {
        token_hash: sha256_b64(random_token(32).as_bytes()),
        family_id: family.to_owned(),
        created_at: now,
        expires_at: now + 3600,
    };
    let next_hash = next.token_hash.clone();
    let spend = Spend {
        kind: SpendKind::Refresh,
        hash: hash.to_owned(),
        now,
        issued: Some(Issued {
            family: None,
            refresh: Some(next),
            access_jti: random_token(16),
            access_exp: now + 600,
        }),
    };
    (spend, next_hash)
}

fn jti(spend: &Spend) -> String {
    spend.issued.as_ref().unwrap().access_jti.clone()
}

fn family_of(spend: &Spend) -> String {
    spend
        .issued
        .as_ref()
        .unwrap()
        .family
        .as_ref()
        .unwrap()
        .id
        .clone()
}

async fn one_batch_spends_codes_and_treats_duplicates_as_replays(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(&app, serde_json::json!({"skip_consent": true})).await;
    let store = open_store(&app).await;
    let (c1, c2) = (code_for(&app, &id).await, code_for(&app, &id).await);

    let (first, first_refresh) = code_spend(store.as_ref(), &c1, true).await;
    let (duplicate, duplicate_refresh) = code_spend(store.as_ref(), &c1, true).await;
    let (second, _) = code_spend(store.as_ref(), &c2, false).await;
    let unknown = Spend {
        hash: sha256_b64(b"no such code"),
        ..second.clone()
    };
    let results = store
        .spend(&[first.clone(), duplicate.clone(), unknown, second.clone()])
        .await
        .unwrap();
    assert_eq!(
        results,
        [
            Spent::Claimed,
            Spent::Replayed,
            Spent::Unknown,
            Spent::Claimed
        ]
    );
    // The duplicate was a replay in the same transaction: what the first
    // use issued is revoked, and the duplicate wrote nothing.
    let found = store
        .find_refresh(first_refresh.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(found.family_revoked);
    assert_eq!(found.family.id, family_of(&first));
    assert!(store.is_revoked(&jti(&first)).await.unwrap());
    assert!(
        store
            .find_refresh(duplicate_refresh.as_deref().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.is_revoked(&jti(&duplicate)).await.unwrap());
    // The other code is spent, its access token live; used again alone, it
    // is a replay and its access token is revoked.
    assert!(!store.is_revoked(&jti(&second)).await.unwrap());
    assert!(store.find_code(&second.hash).await.unwrap().unwrap().used);
    assert_eq!(
        store.spend(std::slice::from_ref(&second)).await.unwrap(),
        [Spent::Replayed]
    );
    assert!(store.is_revoked(&jti(&second)).await.unwrap());
}
both!(one_batch_spends_codes_and_treats_duplicates_as_replays);

async fn one_batch_rotates_refresh_tokens_and_refuses_revoked_families(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(&app, serde_json::json!({"skip_consent": true})).await;
    let store = open_store(&app).await;
    let (a, a_refresh) = code_spend(store.as_ref(), &code_for(&app, &id).await, true).await;
    let (b, b_refresh) = code_spend(store.as_ref(), &code_for(&app, &id).await, true).await;
    assert_eq!(
        store.spend(&[a.clone(), b.clone()]).await.unwrap(),
        [Spent::Claimed, Spent::Claimed]
    );
    let (a_refresh, b_refresh) = (a_refresh.unwrap(), b_refresh.unwrap());

    // Family a rotates once, twice in one batch (the second is a replay);
    // family b rotates cleanly in the same batch.
    let (a1, a1_next) = refresh_spend(&a_refresh, &family_of(&a));
    let (a2, a2_next) = refresh_spend(&a_refresh, &family_of(&a));
    let (b1, b1_next) = refresh_spend(&b_refresh, &family_of(&b));
    let check_only = Spend {
        issued: None,
        ..refresh_spend(&b1_next, &family_of(&b)).0
    };
    let results = store
        .spend(&[a1.clone(), a2, b1.clone(), check_only])
        .await
        .unwrap();
    assert_eq!(
        results,
        [
            Spent::Claimed,
            Spent::Replayed,
            Spent::Claimed,
            Spent::Unknown
        ]
    );
    let a_child = store.find_refresh(&a1_next).await.unwrap().unwrap();
    assert!(a_child.family_revoked, "a replay revokes the whole family");
    assert!(store.is_revoked(&jti(&a1)).await.unwrap());
    assert!(store.find_refresh(&a2_next).await.unwrap().is_none());
    let b_child = store.find_refresh(&b1_next).await.unwrap().unwrap();
    assert!(!b_child.family_revoked);
    assert!(!b_child.used, "a check-only spend spends nothing");
    assert!(!store.is_revoked(&jti(&b1)).await.unwrap());

    // A live token of a revoked family is refused and stays unspent.
    let (a3, a3_next) = refresh_spend(&a1_next, &family_of(&a));
    assert_eq!(store.spend(&[a3]).await.unwrap(), [Spent::Revoked]);
    assert!(!store.find_refresh(&a1_next).await.unwrap().unwrap().used);
    assert!(store.find_refresh(&a3_next).await.unwrap().is_none());
}
both!(one_batch_rotates_refresh_tokens_and_refuses_revoked_families);

/// Through the group-commit queue: redemptions sent together share one
/// batch; when the batch fails (here a refresh-token hash that already
/// exists), each item is retried alone, and only the bad one fails.
async fn a_failed_batch_is_retried_item_by_item(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(&app, serde_json::json!({"skip_consent": true})).await;
    let store = open_store(&app).await;
    let (taken, taken_refresh) = code_spend(store.as_ref(), &code_for(&app, &id).await, true).await;
    assert_eq!(store.spend(&[taken]).await.unwrap(), [Spent::Claimed]);

    let (good, good_refresh) = code_spend(store.as_ref(), &code_for(&app, &id).await, true).await;
    let (mut bad, _) = code_spend(store.as_ref(), &code_for(&app, &id).await, true).await;
    if let Some(issued) = bad.issued.as_mut() {
        issued.refresh.as_mut().unwrap().token_hash = taken_refresh.unwrap();
    }
    let group = GroupCommit::start(store.clone(), 1);
    let (good_result, bad_result) = tokio::join!(group.spend(good), group.spend(bad.clone()));
    assert_eq!(good_result.unwrap(), Spent::Claimed);
    assert!(bad_result.is_err());
    assert!(
        !store
            .find_refresh(&good_refresh.unwrap())
            .await
            .unwrap()
            .unwrap()
            .family_revoked
    );
    // Nothing of the bad item was written: its code is still unused.
    assert!(!store.find_code(&bad.hash).await.unwrap().unwrap().used);
}

mod a_failed_batch_is_retried_item_by_item {
    // One thread: both requests are queued before the collector runs, so
    // they land in one batch.
    #[tokio::test(flavor = "current_thread")]
    async fn sqlite() {
        super::a_failed_batch_is_retried_item_by_item(crate::common::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "current_thread")]
    async fn postgres() {
        super::a_failed_batch_is_retried_item_by_item(crate::common::Backend::Postgres).await
    }
}

/// Lookups read together: `find_codes` / `find_refreshes` answer the rows
/// found, and `GroupRead` gives each request the row of its own hash
/// (duplicates included, unknown ones `None`), for both kinds in one batch.
async fn one_read_answers_every_lookup_of_a_batch(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, _) = web_client(&app, serde_json::json!({"skip_consent": true})).await;
    let store = open_store(&app).await;
    let (c1, c2) = (code_for(&app, &id).await, code_for(&app, &id).await);
    let (h1, h2) = (sha256_b64(c1.as_bytes()), sha256_b64(c2.as_bytes()));
    let (spent, refresh) = code_spend(store.as_ref(), &c2, true).await;
    assert_eq!(store.spend(&[spent]).await.unwrap(), [Spent::Claimed]);
    let refresh = refresh.unwrap();
    let unknown = sha256_b64(b"nothing stored under this");

    let mut found = store
        .find_codes(&[h2.clone(), unknown.clone(), h1.clone()])
        .await
        .unwrap();
    found.sort_by(|a, b| a.code.code_hash.cmp(&b.code.code_hash));
    let mut expected = vec![(h1.clone(), false), (h2.clone(), true)];
    expected.sort();
    let got: Vec<(String, bool)> = found
        .iter()
        .map(|f| (f.code.code_hash.clone(), f.used))
        .collect();
    assert_eq!(got, expected);
    assert!(store.find_codes(&[]).await.unwrap().is_empty());
    let refreshes = store
        .find_refreshes(&[unknown.clone(), refresh.clone()])
        .await
        .unwrap();
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].token.token_hash, refresh);

    let group = GroupRead::start(store.clone(), 1);
    let (a, b, c, d, e, f) = tokio::join!(
        group.code(h1.clone()),
        group.code(h1.clone()),
        group.code(unknown.clone()),
        group.code(h2.clone()),
        group.refresh(refresh.clone()),
        group.refresh(unknown.clone()),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!((a.code.code_hash.as_str(), a.used), (h1.as_str(), false));
    assert_eq!((b.code.code_hash.as_str(), b.used), (h1.as_str(), false));
    assert_eq!(a.user.sub, a.code.sub);
    assert!(c.unwrap().is_none());
    let d = d.unwrap().unwrap();
    assert_eq!((d.code.code_hash.as_str(), d.used), (h2.as_str(), true));
    let e = e.unwrap().unwrap();
    assert_eq!(e.token.token_hash, refresh);
    assert_eq!(e.user.sub, d.code.sub);
    assert!(!e.used && !e.family_revoked);
    assert!(f.unwrap().is_none());
}
mod one_read_answers_every_lookup_of_a_batch {
    // One thread: the six lookups are queued before the collector runs, so
    // they land in one batch of both kinds.
    #[tokio::test(flavor = "current_thread")]
    async fn sqlite() {
        super::one_read_answers_every_lookup_of_a_batch(crate::common::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "current_thread")]
    async fn postgres() {
        super::one_read_answers_every_lookup_of_a_batch(crate::common::Backend::Postgres).await
    }
}

/// The default audit retention: 90 days.
const RETENTION: i64 = 90 * 24 * 3600;

/// Housekeeping deletes what has expired (audit events once past their
/// retention), in batches, and nothing else.
async fn housekeeping_deletes_only_what_has_expired(backend: Backend) {
    let (app, _idp) = app_with_idp(backend, &[]).await;
    let (id, secret) = web_client(&app, serde_json::json!({"skip_consent": true})).await;
    let store = open_store(&app).await;
    let code = code_for(&app, &id).await;
    let tokens: serde_json::Value = crate::login::redeem(&app, &id, &secret, &code)
        .await
        .json()
        .await
        .unwrap();
    let unused = sha256_b64(code_for(&app, &id).await.as_bytes());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    store
        .revoke_access_token("a-revoked-jti", now + 600, now)
        .await
        .unwrap();

    // The server's audit events are written (reading them flushes).
    let r = app
        .admin_request(reqwest::Method::GET, "/admin/events")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let all = tessera::store::EventFilter::default();
    let events = store.list_events(&all, 1000).await.unwrap().len();
    assert!(events >= 3, "{events}");

    // Nothing has expired yet.
    assert_eq!(store.delete_expired(now, 2, RETENTION).await.unwrap(), 0);
    assert_eq!(store.list_events(&all, 1000).await.unwrap().len(), events);
    assert!(store.find_code(&unused).await.unwrap().is_some());
    assert_eq!(store.revoked_since(i64::MIN, now).await.unwrap().len(), 1);

    // A hundred days later every lifetime has passed (the refresh family's
    // 90 days included); two rows per batch makes it loop.
    let later = now + 100 * 24 * 3600;
    let deleted = store.delete_expired(later, 2, RETENTION).await.unwrap();
    assert!(deleted >= 6 + events as u64, "{deleted}");
    assert!(store.list_events(&all, 1000).await.unwrap().is_empty());
    assert!(store.find_code(&unused).await.unwrap().is_none());
    assert!(store.revoked_since(i64::MIN, now).await.unwrap().is_empty());
    let refresh_hash = sha256_b64(tokens["refresh_token"].as_str().unwrap().as_bytes());
    assert!(store.find_refresh(&refresh_hash).await.unwrap().is_none());
    assert_eq!(store.delete_expired(later, 2, RETENTION).await.unwrap(), 0);
    // Users and clients are not records that expire.
    let payload = tokens["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&tessera::secret::b64url_decode(payload).unwrap()).unwrap();
    let sub = claims["sub"].as_str().unwrap();
    assert!(store.get_user(sub).await.unwrap().is_some());
    assert!(store.get_client(&id).await.unwrap().is_some());
}
both!(housekeeping_deletes_only_what_has_expired);
