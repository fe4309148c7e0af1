//! The life of a signing key (PRODUCT.md "Signing keys"), as pure planners:
//! each takes the current key records and `now`, and returns the changes to
//! apply. `Store::change_keys` runs a planner under a database lock, so two
//! instances (or an instance and the CLI) never both act on the same state.
//!
//! pending (published, not signing) → active (signing, one per algorithm)
//! → retiring (published, not signing) → retired (gone from the JWKS).

use std::time::Duration;

use super::Alg;
use super::keys::{KeyDir, SigningKey};
use crate::store::{KeyChange, KeyRecord, KeyState};

/// Generates a key, writes its PEM file and returns its record.
fn new_key(dir: &KeyDir, alg: Alg, state: KeyState, now: i64) -> anyhow::Result<KeyRecord> {
    let (key, der) = SigningKey::generate(alg)?;
    dir.write(&key.kid, &der)?;
    Ok(KeyRecord {
        kid: key.kid,
        alg,
        state,
        created_at: now,
        activated_at: (state == KeyState::Active).then_some(now),
        retiring_at: None,
        retired_at: None,
    })
}

fn find(records: &[KeyRecord], alg: Alg, state: KeyState) -> impl Iterator<Item = &KeyRecord> {
    records
        .iter()
        .filter(move |r| r.alg == alg && r.state == state)
}

/// At start: every algorithm in use has an active key. A pending key is
/// promoted if there is one (nothing else signs for that algorithm);
/// otherwise a key is generated and active at once.
pub fn ensure(
    records: &[KeyRecord],
    algs: &[Alg],
    dir: &KeyDir,
    now: i64,
) -> anyhow::Result<Vec<KeyChange>> {
    let mut changes = Vec::new();
    for &alg in algs {
        if find(records, alg, KeyState::Active).next().is_some() {
            continue;
        }
        match find(records, alg, KeyState::Pending).max_by_key(|r| r.created_at) {
            Some(pending) => {
                changes.push(KeyChange::transition(&pending.kid, KeyState::Active, now))
            }
            None => changes.push(KeyChange::Insert(new_key(dir, alg, KeyState::Active, now)?)),
        }
    }
    Ok(changes)
}

/// How `tessera keys rotate` replaces the active key.
#[derive(Clone, Copy, Debug, Default)]
pub struct RotateMode {
    /// The new key signs at once; the old one moves to retiring.
    pub now: bool,
    /// With `now`: the old key leaves the JWKS at once (a compromised key).
    pub retire_old: bool,
}

/// Adds a new key for `alg`. Without `now` it is pending, and `maintain`
/// activates it once it has been published for longer than the JWKS
/// `max-age` (every cache has then seen it). A newer key supersedes an older
/// pending one, which is retired unused.
pub fn rotate(
    records: &[KeyRecord],
    alg: Alg,
    mode: RotateMode,
    dir: &KeyDir,
    now: i64,
) -> anyhow::Result<Vec<KeyChange>> {
    let mut changes: Vec<KeyChange> = find(records, alg, KeyState::Pending)
        .map(|r| KeyChange::transition(&r.kid, KeyState::Retired, now))
        .collect();
    if mode.now {
        let old = if mode.retire_old {
            KeyState::Retired
        } else {
            KeyState::Retiring
        };
        changes.extend(
            find(records, alg, KeyState::Active).map(|r| KeyChange::transition(&r.kid, old, now)),
        );
        if mode.retire_old {
            changes.extend(
                find(records, alg, KeyState::Retiring)
                    .map(|r| KeyChange::transition(&r.kid, KeyState::Retired, now)),
            );
        }
        changes.push(KeyChange::Insert(new_key(dir, alg, KeyState::Active, now)?));
    } else {
        changes.push(KeyChange::Insert(new_key(
            dir,
            alg,
            KeyState::Pending,
            now,
        )?));
    }
    Ok(changes)
}

/// The timing rules, run periodically by whichever instance holds the lock.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// `TESSERA_JWKS_MAX_AGE`: how long a key must be published before it signs.
    pub publish_before_use: Duration,
    /// The longest lifetime of anything signed (access, ID tokens).
    pub max_token_ttl: Duration,
    /// `TESSERA_KEY_ROTATION_PERIOD`; `None` = only by command.
    pub rotation_period: Option<Duration>,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Promotes pending keys that every JWKS cache has seen, retires keys whose
/// last token has expired, and starts a scheduled rotation when the active
/// key is older than the rotation period.
pub fn maintain(
    records: &[KeyRecord],
    algs: &[Alg],
    schedule: Schedule,
    dir: &KeyDir,
    now: i64,
) -> anyhow::Result<Vec<KeyChange>> {
    let mut changes = Vec::new();
    for alg in Alg::ALL {
        let ready = find(records, alg, KeyState::Pending)
            .filter(|r| {
                r.created_at
                    .saturating_add(secs(schedule.publish_before_use))
                    <= now
            })
            .max_by_key(|r| r.created_at);
        if let Some(pending) = ready {
            changes.extend(
                find(records, alg, KeyState::Active)
                    .map(|r| KeyChange::transition(&r.kid, KeyState::Retiring, now)),
            );
            changes.push(KeyChange::transition(&pending.kid, KeyState::Active, now));
        }
        changes.extend(
            find(records, alg, KeyState::Retiring)
                .filter(|r| {
                    r.retiring_at
                        .unwrap_or(now)
                        .saturating_add(secs(schedule.max_token_ttl))
                        <= now
                })
                .map(|r| KeyChange::transition(&r.kid, KeyState::Retired, now)),
        );
        let Some(period) = schedule.rotation_period else {
            continue;
        };
        let due = find(records, alg, KeyState::Active).any(|r| {
            r.activated_at
                .unwrap_or(r.created_at)
                .saturating_add(secs(period))
                <= now
        });
        let has_pending = find(records, alg, KeyState::Pending).next().is_some();
        if due && !has_pending && algs.contains(&alg) {
            changes.push(KeyChange::Insert(new_key(
                dir,
                alg,
                KeyState::Pending,
                now,
            )?));
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;

    fn record(kid: &str, state: KeyState, created_at: i64) -> KeyRecord {
        KeyRecord {
            kid: kid.into(),
            alg: Alg::ES256,
            state,
            created_at,
            activated_at: (state == KeyState::Active).then_some(created_at),
            retiring_at: (state == KeyState::Retiring).then_some(created_at),
            retired_at: None,
        }
    }

    fn schedule() -> Schedule {
        Schedule {
            publish_before_use: Duration::from_secs(300),
            max_token_ttl: Duration::from_secs(3600),
            rotation_period: None,
        }
    }

    fn dir() -> KeyDir {
        let d = std::env::temp_dir().join(format!("tessera-rotation-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        KeyDir::new(d)
    }

    #[test]
    fn a_pending_key_waits_for_the_jwks_max_age() {
        let records = [
            record("a", KeyState::Active, 0),
            record("p", KeyState::Pending, 1000),
        ];
        assert!(
            maintain(&records, &[Alg::ES256], schedule(), &dir(), 1299)
                .unwrap()
                .is_empty()
        );
        let changes = maintain(&records, &[Alg::ES256], schedule(), &dir(), 1300).unwrap();
        assert_eq!(
            changes,
            vec![
                KeyChange::transition("a", KeyState::Retiring, 1300),
                KeyChange::transition("p", KeyState::Active, 1300),
            ]
        );
    }

    #[test]
    fn a_retiring_key_stays_published_until_its_last_token_expires() {
        let records = [record("r", KeyState::Retiring, 1000)];
        assert!(
            maintain(&records, &[], schedule(), &dir(), 4599)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            maintain(&records, &[], schedule(), &dir(), 4600).unwrap(),
            vec![KeyChange::transition("r", KeyState::Retired, 4600)]
        );
    }

    #[test]
    fn scheduled_rotation_adds_one_pending_key() {
        let mut s = schedule();
        s.rotation_period = Some(Duration::from_secs(100));
        let records = [record("a", KeyState::Active, 0)];
        let changes = maintain(&records, &[Alg::ES256], s, &dir(), 100).unwrap();
        assert!(matches!(&changes[..], [KeyChange::Insert(r)] if r.state == KeyState::Pending));
        let records = [
            record("a", KeyState::Active, 0),
            record("p", KeyState::Pending, 100),
        ];
        assert!(
            maintain(&records, &[Alg::ES256], s, &dir(), 150)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn rotate_now_retires_or_keeps_the_old_key_published() {
        let records = [record("a", KeyState::Active, 0)];
        let keep = rotate(
            &records,
            Alg::ES256,
            RotateMode {
                now: true,
                retire_old: false,
            },
            &dir(),
            5,
        )
        .unwrap();
        assert_eq!(
            keep.first(),
            Some(&KeyChange::transition("a", KeyState::Retiring, 5))
        );
        let drop = rotate(
            &records,
            Alg::ES256,
            RotateMode {
                now: true,
                retire_old: true,
            },
            &dir(),
            5,
        )
        .unwrap();
        assert_eq!(
            drop.first(),
            Some(&KeyChange::transition("a", KeyState::Retired, 5))
        );
    }
}
