//! Dashboard accounts: sessions, one-time invites, access resets, the last owner.

use crate::common::TestDb;
use crate::on_both_backends;
use crate::{conflict, org, store};
use leadtrail::domain::tier::Tier;
use leadtrail::domain::user::Role;
use leadtrail::store::{Conflict, StoreError, now_ms};

const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

async fn a_session_resolves_to_its_user_until_it_expires_or_is_deleted(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let user = store
        .create_user(&org, "Member@Acme.Example", HASH, Role::Member)
        .await
        .unwrap();
    assert_eq!(user.email, "member@acme.example");
    store
        .create_session(&user.id, &org, "live", "csrf-1", now_ms() + 60_000)
        .await
        .unwrap();
    store
        .create_session(&user.id, &org, "stale", "csrf-2", now_ms() - 1)
        .await
        .unwrap();
    let live = store.session("live").await.unwrap().unwrap();
    assert_eq!(
        (live.user.id.as_str(), live.user.role),
        (user.id.as_str(), Role::Member)
    );
    assert_eq!(live.csrf_token, "csrf-1");
    assert!(store.session("stale").await.unwrap().is_none());
    assert!(store.session("unknown").await.unwrap().is_none());
    store
        .create_invite(&org, "gone@acme.example", Role::Viewer, "old", now_ms() - 1)
        .await
        .unwrap();
    // The expired session and the expired link are counted together; the live ones stay.
    assert_eq!(store.forget_expired_sessions().await.unwrap(), 2);
    assert_eq!(store.forget_expired_sessions().await.unwrap(), 0);
    assert!(store.session("live").await.unwrap().is_some());
    store.delete_session("live").await.unwrap();
    assert!(store.session("live").await.unwrap().is_none());
}

/// One login, several organizations: each membership has its own role, a session works in
/// one of them, and leaving one keeps the others.
async fn one_login_belongs_to_several_organizations(db: TestDb) {
    let store = store(&db).await;
    let (a, _) = org(&store, Tier::Starter).await;
    let (b, _) = org(&store, Tier::Starter).await;
    let owner = store
        .create_user(&a, "one@acme.example", HASH, Role::Owner)
        .await
        .unwrap();
    // Inviting the address elsewhere says nothing about it having a login.
    store
        .create_invite(
            &b,
            "ONE@acme.example",
            Role::Viewer,
            "join",
            now_ms() + 60_000,
        )
        .await
        .unwrap();
    // Choosing a password through the link is refused: the login has one (no takeover).
    assert_eq!(
        conflict(store.accept_invite("join", "$other$hash").await),
        Conflict::LoginExists
    );
    assert!(
        store.invite("join").await.unwrap().is_some(),
        "still unused"
    );
    // Signed in as another login, the link is not theirs.
    let stranger = store
        .create_user(&b, "two@acme.example", HASH, Role::Owner)
        .await
        .unwrap();
    assert_eq!(
        conflict(store.join_by_invite("join", &stranger.id).await),
        Conflict::InviteForAnotherLogin
    );
    let joined = store.join_by_invite("join", &owner.id).await.unwrap();
    assert_eq!(
        (joined.id.as_str(), joined.role),
        (owner.id.as_str(), Role::Viewer)
    );
    assert_eq!(
        conflict(
            store
                .create_invite(
                    &b,
                    "one@acme.example",
                    Role::Member,
                    "again",
                    now_ms() + 60_000
                )
                .await
        ),
        Conflict::AlreadyMember
    );
    let orgs: Vec<_> = store
        .memberships(&owner.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.org_id, m.role))
        .collect();
    assert_eq!(
        orgs,
        vec![(a.clone(), Role::Owner), (b.clone(), Role::Viewer)]
    );

    // A session works in one organization, with that membership's role, and can switch.
    store
        .create_session(&owner.id, &a, "s", "c", now_ms() + 60_000)
        .await
        .unwrap();
    let here = store.session("s").await.unwrap().unwrap();
    assert_eq!(
        (here.user.org_id.clone(), here.user.role),
        (a.clone(), Role::Owner)
    );
    store.switch_organization("s", &owner.id, &b).await.unwrap();
    let there = store.session("s").await.unwrap().unwrap();
    assert_eq!(
        (there.user.org_id.clone(), there.user.role),
        (b.clone(), Role::Viewer)
    );
    let (c, _) = org(&store, Tier::Starter).await;
    assert!(matches!(
        store.switch_organization("s", &owner.id, &c).await,
        Err(StoreError::NotFound)
    ));

    // Removed from b: the session working there ends, the login and a stay.
    store.remove_user(&b, &owner.id).await.unwrap();
    assert!(store.session("s").await.unwrap().is_none());
    let left = store
        .user_by_email("one@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((left.org_id, left.role), (a, Role::Owner));
}

/// A reset by one organization's owner never takes a login's access to another organization:
/// the password stays, the link needs that login.
async fn a_reset_in_one_organization_keeps_the_password_used_elsewhere(db: TestDb) {
    let store = store(&db).await;
    let (a, _) = org(&store, Tier::Starter).await;
    let (b, _) = org(&store, Tier::Starter).await;
    let user = store
        .create_user(&a, "both@acme.example", HASH, Role::Member)
        .await
        .unwrap();
    // Adding the login elsewhere adds a membership: same id, its own password kept.
    let again = store
        .create_user(&b, "Both@acme.example", "$ignored$", Role::Owner)
        .await
        .unwrap();
    assert_eq!(again.id, user.id);
    assert_eq!(again.password_hash, HASH);
    assert!(again.has_password());
    assert_eq!((again.org_id, again.role), (b.clone(), Role::Owner));
    store
        .create_session(&user.id, &a, "in-a", "c", now_ms() + 60_000)
        .await
        .unwrap();
    store
        .create_session(&user.id, &b, "in-b", "c", now_ms() + 60_000)
        .await
        .unwrap();
    store
        .reset_user_access(&a, &user.id, "reset", now_ms() + 60_000)
        .await
        .unwrap();
    assert!(store.session("in-a").await.unwrap().is_none());
    let in_b = store.session("in-b").await.unwrap().unwrap();
    assert_eq!(in_b.user.password_hash, HASH, "the password is kept");
    assert_eq!(
        conflict(store.accept_invite("reset", "$new$").await),
        Conflict::LoginExists
    );
    let back = store.join_by_invite("reset", &user.id).await.unwrap();
    assert_eq!((back.org_id, back.role), (a, Role::Member));
}

async fn an_invite_link_works_once_and_not_after_it_expires(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    store
        .create_invite(
            &org,
            "new@acme.example",
            Role::Viewer,
            "tok",
            now_ms() + 60_000,
        )
        .await
        .unwrap();
    store
        .create_invite(&org, "late@acme.example", Role::Viewer, "old", now_ms() - 1)
        .await
        .unwrap();
    let invite = store.invite("tok").await.unwrap().unwrap();
    assert_eq!(
        (invite.email.as_str(), invite.role),
        ("new@acme.example", Role::Viewer)
    );
    assert_eq!(invite.org_name, "Acme Roofing");
    let user = store.accept_invite("tok", HASH).await.unwrap();
    assert_eq!(
        (user.org_id.clone(), user.role),
        (org.clone(), Role::Viewer)
    );
    assert!(user.has_password());
    assert!(store.invite("tok").await.unwrap().is_none());
    assert!(matches!(
        store.accept_invite("tok", HASH).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.invite("old").await.unwrap().is_none());
    assert!(matches!(
        store.accept_invite("old", HASH).await,
        Err(StoreError::NotFound)
    ));
}

async fn resetting_access_ends_sessions_and_needs_the_new_link(db: TestDb) {
    let store = store(&db).await;
    let (other, _) = org(&store, Tier::Starter).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let user = store
        .create_user(&org, "m@acme.example", HASH, Role::Member)
        .await
        .unwrap();
    store
        .create_session(&user.id, &org, "s1", "c", now_ms() + 60_000)
        .await
        .unwrap();
    // Another tenant cannot reach this user.
    assert!(matches!(
        store
            .reset_user_access(&other, &user.id, "x", now_ms() + 60_000)
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .reset_user_access(&org, &user.id, "reset", now_ms() + 60_000)
        .await
        .unwrap();
    assert!(store.session("s1").await.unwrap().is_none());
    // Waiting for the link, the login works nowhere and is listed as a link, not a member.
    assert!(
        store
            .user_by_email("m@acme.example")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.users(&org).await.unwrap().is_empty());
    assert_eq!(store.pending_invites(&org).await.unwrap().len(), 1);
    let back = store.accept_invite("reset", HASH).await.unwrap();
    assert_eq!((back.id, back.role), (user.id, Role::Member));
}

async fn the_last_owner_cannot_be_removed(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let owner = store
        .create_user(&org, "o@acme.example", HASH, Role::Owner)
        .await
        .unwrap();
    let viewer = store
        .create_user(&org, "v@acme.example", HASH, Role::Viewer)
        .await
        .unwrap();
    store
        .create_session(&viewer.id, &org, "vs", "c", now_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!(
        conflict(store.remove_user(&org, &owner.id).await),
        Conflict::LastOwner
    );
    store.remove_user(&org, &viewer.id).await.unwrap();
    assert!(store.session("vs").await.unwrap().is_none());
    assert_eq!(store.users(&org).await.unwrap().len(), 1);
}

async fn two_owners_removing_each_other_at_once_leave_one_owner(db: TestDb) {
    let store = store(&db).await;
    for round in 0..5 {
        let (org, _) = org(&store, Tier::Starter).await;
        let a = store
            .create_user(&org, &format!("a{round}@acme.example"), HASH, Role::Owner)
            .await
            .unwrap();
        let b = store
            .create_user(&org, &format!("b{round}@acme.example"), HASH, Role::Owner)
            .await
            .unwrap();
        let (one, other) = tokio::join!(
            store.remove_user(&org, &b.id),
            store.remove_user(&org, &a.id)
        );
        let removed = [&one, &other].iter().filter(|r| r.is_ok()).count();
        assert_eq!(removed, 1, "round {round}: {one:?} / {other:?}");
        let refused = if one.is_err() { one } else { other };
        assert_eq!(conflict(refused), Conflict::LastOwner);
        let users = store.users(&org).await.unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].role, Role::Owner);
    }
}

/// A login still waiting for its reset link, added to another organization, stays unable to
/// sign in there until it follows the link.
async fn a_login_added_while_its_reset_is_pending_needs_the_link(db: TestDb) {
    let store = store(&db).await;
    let (a, _) = org(&store, Tier::Starter).await;
    let (b, _) = org(&store, Tier::Starter).await;
    let solo = store
        .create_user(&a, "solo@acme.example", HASH, Role::Member)
        .await
        .unwrap();
    store
        .reset_user_access(&a, &solo.id, "reset", now_ms() + 60_000)
        .await
        .unwrap();
    let waiting = store
        .create_user(&b, "solo@acme.example", HASH, Role::Viewer)
        .await
        .unwrap();
    assert_eq!(waiting.id, solo.id);
    assert!(!waiting.has_password(), "the reset link sets the password");
    let login = store
        .user_by_email("solo@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert!(!login.has_password());
    let back = store.accept_invite("reset", HASH).await.unwrap();
    assert!(back.has_password());
}

/// Only an organization's newest link for an address works; withdrawing links is scoped to
/// the organization and says when there was nothing to withdraw.
async fn revoking_an_invite_withdraws_its_links_and_says_when_there_were_none(db: TestDb) {
    let store = store(&db).await;
    let (other, _) = org(&store, Tier::Starter).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let later = now_ms() + 60_000;
    for token in ["first", "second"] {
        store
            .create_invite(&org, "new@acme.example", Role::Viewer, token, later)
            .await
            .unwrap();
    }
    assert!(store.invite("first").await.unwrap().is_none(), "replaced");
    assert!(store.invite("second").await.unwrap().is_some());
    assert_eq!(store.pending_invites(&org).await.unwrap().len(), 1);
    assert!(matches!(
        store.revoke_invite(&other, "new@acme.example").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.revoke_invite(&org, "nobody@acme.example").await,
        Err(StoreError::NotFound)
    ));
    assert!(store.invite("second").await.unwrap().is_some());
    store.revoke_invite(&org, "New@Acme.Example").await.unwrap();
    assert!(store.invite("second").await.unwrap().is_none());
    assert!(store.pending_invites(&org).await.unwrap().is_empty());
    assert!(matches!(
        store.revoke_invite(&org, "new@acme.example").await,
        Err(StoreError::NotFound)
    ));
}

on_both_backends!(
    a_login_added_while_its_reset_is_pending_needs_the_link,
    revoking_an_invite_withdraws_its_links_and_says_when_there_were_none,
    two_owners_removing_each_other_at_once_leave_one_owner,
    a_session_resolves_to_its_user_until_it_expires_or_is_deleted,
    one_login_belongs_to_several_organizations,
    a_reset_in_one_organization_keeps_the_password_used_elsewhere,
    an_invite_link_works_once_and_not_after_it_expires,
    resetting_access_ends_sessions_and_needs_the_new_link,
    the_last_owner_cannot_be_removed,
);
