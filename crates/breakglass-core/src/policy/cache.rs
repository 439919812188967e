//! What a decision reads, built once for equal inputs: the principal, its
//! groups and one resource per scope as Cedar entities, and the context.
//! Building them costs more than Cedar's evaluation, so a policy keeps
//! recent ones in small bounded caches keyed by the whole of their inputs.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cedar_policy::{Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};

use super::{ContextInput, IncidentInput, Policy};
use crate::scope::Scope;
use crate::time::Timestamp;

/// How many entity sets and contexts a policy keeps built (each about a
/// kilobyte); beyond that, one is dropped to make room for the next.
pub(super) const ENTITIES_CACHE_CAPACITY: usize = 512;
pub(super) const CONTEXT_CACHE_CAPACITY: usize = 256;

/// A small bounded map from the inputs something was built from to what was
/// built. Entries are found by a keyed hash of the inputs and then compared
/// with them in full, so a hit is always for equal inputs: a collision is a
/// miss, never someone else's value. When full, an arbitrary entry is
/// dropped to make room; with a capacity of 0 nothing is kept. Nothing is
/// built while the lock is held.
pub(super) struct BuildCache<K, V> {
    map: Mutex<HashMap<u64, (K, V)>>,
    hasher: RandomState,
    capacity: usize,
}

impl<K, V: Clone> BuildCache<K, V> {
    pub(super) fn new(capacity: usize) -> Self {
        BuildCache { map: Mutex::new(HashMap::new()), hasher: RandomState::new(), capacity }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, (K, V)>> {
        // Nothing that can panic runs under the lock, and every entry is
        // inserted whole, so a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value built from inputs equal to `key` (`matches`), or `build`'s,
    /// which is kept unless it failed (`build` returns the owned key too).
    pub(super) fn get_or_build<Q: Hash, E>(
        &self,
        key: &Q,
        matches: impl Fn(&K, &Q) -> bool,
        build: impl FnOnce() -> Result<(K, V), E>,
    ) -> Result<V, E> {
        let hash = self.hasher.hash_one(key);
        if let Some((k, v)) = self.lock().get(&hash)
            && matches(k, key)
        {
            return Ok(v.clone());
        }
        let (k, v) = build()?;
        if self.capacity == 0 {
            return Ok(v);
        }
        let mut map = self.lock();
        if map.len() >= self.capacity
            && !map.contains_key(&hash)
            && let Some(evict) = map.keys().next().copied()
        {
            map.remove(&evict);
        }
        map.insert(hash, (k, v.clone()));
        Ok(v)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What the entities of a decision are built from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct EntitiesKey<'a> {
    principal: Cow<'a, str>,
    groups: Cow<'a, [String]>,
    scopes: Cow<'a, [Scope]>,
}

impl EntitiesKey<'_> {
    fn into_owned(self) -> EntitiesKey<'static> {
        EntitiesKey {
            principal: Cow::Owned(self.principal.into_owned()),
            groups: Cow::Owned(self.groups.into_owned()),
            scopes: Cow::Owned(self.scopes.into_owned()),
        }
    }
}

/// The principal, one resource per scope (in order), and the entities.
pub(super) struct BuiltEntities {
    pub(super) principal: EntityUid,
    pub(super) resources: Vec<EntityUid>,
    pub(super) entities: Entities,
}

/// Everything a context is built from: a [`ContextInput`] reduced to what
/// the context says (the hour and weekday of `now`, the duration in whole
/// minutes), so that inputs giving equal contexts have equal keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ContextKey<'a> {
    pub(super) minutes: i64,
    pub(super) hour: i64,
    pub(super) weekday: i64,
    pub(super) overdue_reviews: u32,
    pub(super) requester: Cow<'a, str>,
    pub(super) reason: Cow<'a, str>,
    pub(super) gate: Cow<'a, str>,
    pub(super) incident: Option<Cow<'a, IncidentInput>>,
}

impl<'a> ContextKey<'a> {
    pub(super) fn new(ctx: &'a ContextInput) -> ContextKey<'a> {
        ContextKey::from_parts(
            &ctx.requester,
            ctx.overdue_reviews,
            ctx.duration_ms,
            &ctx.reason,
            &ctx.gate,
            ctx.incident.as_ref(),
            ctx.now,
        )
    }

    /// The fields of a [`ContextInput`], borrowed.
    pub(super) fn from_parts(
        requester: &'a str,
        overdue_reviews: u32,
        duration_ms: i64,
        reason: &'a str,
        gate: &'a str,
        incident: Option<&'a IncidentInput>,
        now: Timestamp,
    ) -> ContextKey<'a> {
        let day_ms = 86_400_000;
        let days = now.0.div_euclid(day_ms);
        ContextKey {
            // Rounded up, so "at most 60 minutes" refuses 60 minutes and a second.
            minutes: (duration_ms.max(0) as u64).div_ceil(60_000) as i64,
            hour: now.0.rem_euclid(day_ms) / 3_600_000,
            // 1970-01-01 was a Thursday, day 3 of a week that starts on Monday.
            weekday: (days + 3).rem_euclid(7),
            overdue_reviews,
            requester: Cow::Borrowed(requester),
            reason: Cow::Borrowed(reason),
            gate: Cow::Borrowed(gate),
            incident: incident.map(Cow::Borrowed),
        }
    }

    fn into_owned(self) -> ContextKey<'static> {
        ContextKey {
            requester: Cow::Owned(self.requester.into_owned()),
            reason: Cow::Owned(self.reason.into_owned()),
            gate: Cow::Owned(self.gate.into_owned()),
            incident: self.incident.map(|i| Cow::Owned(i.into_owned())),
            ..self
        }
    }
}

impl Policy {
    fn uid(&self, ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    fn resource(&self, scope: &Scope) -> Result<(EntityUid, Entity), String> {
        let s = RestrictedExpression::new_string;
        let (uid, attrs, parent) = match scope {
            Scope::Git { repo, reference } => (
                self.uid(&self.names.git_ref, &format!("{repo}@{reference}")),
                HashMap::from([("repo".to_owned(), s(repo.clone())), ("ref".to_owned(), s(reference.clone()))]),
                self.uid(&self.names.git_repo, repo),
            ),
            Scope::Pipeline { project, stage, environment } => {
                let id = match environment {
                    Some(env) => format!("{project}/{stage}@{env}"),
                    None => format!("{project}/{stage}"),
                };
                (
                    self.uid(&self.names.stage, &id),
                    HashMap::from([
                        ("project".to_owned(), s(project.clone())),
                        ("stage".to_owned(), s(stage.clone())),
                        ("environment".to_owned(), s(environment.clone().unwrap_or_default())),
                    ]),
                    self.uid(&self.names.pipeline, project),
                )
            }
        };
        let entity = Entity::new(uid.clone(), attrs, HashSet::from([parent])).map_err(|e| e.to_string())?;
        Ok((uid, entity))
    }

    /// The principal, its groups and one resource per scope: all a decision reads.
    fn entities(
        &self,
        principal: &str,
        groups: &[String],
        scopes: &[&Scope],
    ) -> Result<(EntityUid, Vec<EntityUid>, Entities), String> {
        let p_uid = self.uid(&self.names.principal, principal);
        let parents: HashSet<EntityUid> = groups.iter().map(|g| self.uid(&self.names.group, g)).collect();
        let attrs = HashMap::from([("name".to_owned(), RestrictedExpression::new_string(principal.to_owned()))]);
        let mut all = Vec::with_capacity(scopes.len() + 1);
        all.push(Entity::new(p_uid.clone(), attrs, parents).map_err(|e| e.to_string())?);
        let mut resources = Vec::with_capacity(scopes.len());
        let mut seen = HashSet::new();
        for scope in scopes {
            let (uid, entity) = self.resource(scope)?;
            if seen.insert(uid.clone()) {
                all.push(entity);
            }
            resources.push(uid);
        }
        let entities = Entities::from_entities(all, None).map_err(|e| e.to_string())?;
        Ok((p_uid, resources, entities))
    }

    /// The entities of [`Policy::entities`], built once for equal inputs.
    pub(super) fn entities_cached(
        &self,
        principal: &str,
        groups: &[String],
        scopes: &[Scope],
    ) -> Result<Arc<BuiltEntities>, String> {
        let key = EntitiesKey {
            principal: Cow::Borrowed(principal),
            groups: Cow::Borrowed(groups),
            scopes: Cow::Borrowed(scopes),
        };
        self.entities_cache.get_or_build(
            &key,
            |cached, key| cached == key,
            || {
                let refs: Vec<&Scope> = scopes.iter().collect();
                let (principal, resources, entities) = self.entities(principal, groups, &refs)?;
                Ok((key.clone().into_owned(), Arc::new(BuiltEntities { principal, resources, entities })))
            },
        )
    }

    #[cfg(test)]
    fn context(ctx: &ContextInput) -> Result<Context, String> {
        Self::build_context(&ContextKey::new(ctx))
    }

    /// The context of [`Policy::context`], built once for equal inputs.
    pub(super) fn context_cached(&self, key: &ContextKey<'_>) -> Result<Context, String> {
        self.context_cache.get_or_build(
            key,
            |cached, key| cached == key,
            || Ok((key.clone().into_owned(), Self::build_context(key)?)),
        )
    }

    fn build_context(key: &ContextKey<'_>) -> Result<Context, String> {
        let long = RestrictedExpression::new_long;
        let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
        let rec = |pairs: Vec<(&str, RestrictedExpression)>| {
            RestrictedExpression::new_record(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)))
                .map_err(|e| e.to_string())
        };
        let none = IncidentInput::default();
        let inc = key.incident.as_deref().unwrap_or(&none);
        Context::from_pairs([
            ("duration_minutes".to_owned(), long(key.minutes)),
            ("reason".to_owned(), string(&key.reason)),
            ("gate".to_owned(), string(&key.gate)),
            (
                "requester".to_owned(),
                rec(vec![("name", string(&key.requester)), ("overdue_reviews", long(key.overdue_reviews.into()))])?,
            ),
            (
                "incident".to_owned(),
                rec(vec![
                    ("present", RestrictedExpression::new_bool(key.incident.is_some())),
                    ("id", string(&inc.id)),
                    ("severity", long(inc.severity)),
                    ("status", string(&inc.status)),
                    ("services", RestrictedExpression::new_set(inc.services.iter().map(|s| string(s)))),
                    ("requester_is_responder", RestrictedExpression::new_bool(inc.requester_is_responder)),
                ])?,
            ),
            ("time".to_owned(), rec(vec![("hour_utc", long(key.hour)), ("weekday", long(key.weekday))])?),
        ])
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::super::decide::action_kind;
    use super::super::testing::{TERMS, example, incident, load, request, scopes};
    use super::super::{ACTIONS, EXAMPLE_POLICY, EXAMPLE_TESTS, schema};
    use super::*;
    use crate::policy::run_tests;
    use crate::policy::tables::TEST_MONDAY_MS;

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn every_request_conforms_to_the_schema() {
        // Decisions skip Cedar's request check for speed; this is that check.
        let policy = example();
        let schema = schema();
        let scopes = scopes(&["git:a/b@refs/heads/*", "pipeline:a/b/deploy", "pipeline:a/b/deploy@prod"]);
        for incident in [None, incident(1, "triggered", true)] {
            let ctx = ContextInput {
                gate: "tests".into(),
                duration_ms: 1,
                incident: incident.clone(),
                ..ContextInput::default()
            };
            let (p, resources, _) =
                policy.entities("alice", &["oncall".into()], &scopes.iter().collect::<Vec<_>>()).unwrap();
            for action in ACTIONS {
                for (scope, r) in scopes.iter().zip(&resources) {
                    let req = cedar_policy::Request::new(
                        p.clone(),
                        policy.names.actions[action].clone(),
                        r.clone(),
                        Policy::context(&ctx).unwrap(),
                        Some(&schema),
                    );
                    let applies = action_kind(action).is_none_or(|k| k == scope.kind());
                    assert_eq!(req.is_ok(), applies, "{action} on {scope}: {req:?}");
                }
            }
        }
        // The entities conform too.
        let (_, _, entities) =
            policy.entities("alice", &["oncall".into()], &scopes.iter().collect::<Vec<_>>()).unwrap();
        let entities: Vec<Entity> = entities.iter().cloned().collect();
        Entities::from_entities(entities, Some(&schema)).unwrap();
    }

    #[test]
    fn the_context_carries_time_duration_and_the_resource() {
        let policy = load(&[(
            "hours.cedar",
            r#"
@id("office-hours") permit (principal, action == Breakglass::Action::"request", resource is Breakglass::PipelineStage)
when { context.time.weekday < 5 && context.time.hour_utc >= 9 && context.time.hour_utc < 17
       && context.duration_minutes <= 60 && resource.environment == "" && resource in Breakglass::Pipeline::"p/q"
       && principal.name == "pat" && context.requester.name == "pat" };
"#,
        )])
        .unwrap();
        let s = Scope::parse("pipeline:p/q/build").unwrap();
        for (at, duration_ms, allowed) in [
            ("2026-01-05T09:00:00Z", 3_600_000, true),  // Monday
            ("2026-01-09T16:59:59Z", 3_600_000, true),  // Friday
            ("2026-01-10T10:00:00Z", 3_600_000, false), // Saturday
            ("2026-01-04T10:00:00Z", 3_600_000, false), // Sunday
            ("2026-01-05T08:59:59Z", 3_600_000, false),
            ("2026-01-05T17:00:00Z", 3_600_000, false),
            ("2026-01-05T12:00:00Z", 3_600_001, false), // 61 minutes, rounded up
            ("1969-12-29T12:00:00Z", 60_000, true),     // a Monday before the epoch
        ] {
            let ctx = ContextInput {
                requester: "pat".into(),
                duration_ms,
                now: Timestamp::parse(at).unwrap(),
                ..ContextInput::default()
            };
            assert_eq!(policy.decide("pat", &[], "request", &s, &ctx).allowed, allowed, "{at} {duration_ms}");
        }
        assert_eq!(Timestamp::parse("2026-01-05T00:00:00Z").unwrap(), Timestamp(TEST_MONDAY_MS));
        assert_eq!(TEST_MONDAY_MS % DAY_MS, 0);
    }

    /// The same policy, building every decision's entities and context afresh.
    fn uncached(files: &[(&str, &str)]) -> Policy {
        let mut policy = load(files).unwrap();
        policy.entities_cache = BuildCache::new(0);
        policy.context_cache = BuildCache::new(0);
        policy
    }

    #[test]
    fn cached_decisions_equal_uncached_ones() {
        let files = [("breakglass.cedar", EXAMPLE_POLICY), ("terms.cedar", TERMS)];
        let fresh = uncached(&files);
        let warm = load(&files).unwrap();
        let scope_sets = [
            &["git:payments/api@refs/heads/main"][..],
            &["git:x/y@refs/heads/feature/a", "git:x/y@refs/heads/main"],
            &["pipeline:payments/api/deploy@production"],
            &["pipeline:p/deploy@prod", "git:x/y@refs/heads/main", "git:x/y@refs/heads/main"],
        ];
        let who: [(&str, &[&str]); 6] = [
            ("alice", &["oncall"]),
            ("alice", &[]),
            ("alice", &["oncall", "dev"]),
            ("bob", &["oncall"]),
            ("sam", &["sre"]),
            ("dana", &["dev"]),
        ];
        let contexts = [
            ContextInput {
                requester: "alice".into(),
                duration_ms: 1_800_000,
                reason: "INC-1".into(),
                ..ContextInput::default()
            },
            ContextInput {
                requester: "bob".into(),
                duration_ms: 1_800_000,
                reason: "INC-1".into(),
                ..ContextInput::default()
            },
            ContextInput {
                duration_ms: 3_600_001,
                reason: "INC-1".into(),
                gate: "secret-scan".into(),
                ..ContextInput::default()
            },
            ContextInput {
                requester: "alice".into(),
                duration_ms: 1_800_000,
                reason: "INC-1".into(),
                gate: "lint".into(),
                incident: incident(1, "triggered", true),
                overdue_reviews: 1,
                now: Timestamp(TEST_MONDAY_MS + 13 * 3_600_000),
            },
        ];
        for (principal, groups) in who {
            let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            for s in scope_sets {
                let s = scopes(s);
                for ctx in &contexts {
                    for action in ACTIONS {
                        let expect = fresh.decide_all(principal, &groups, action, &s, ctx);
                        for _ in 0..2 {
                            assert_eq!(
                                warm.decide_all(principal, &groups, action, &s, ctx),
                                expect,
                                "{principal} {groups:?} {action} {s:?} {ctx:?}"
                            );
                        }
                    }
                    let expect = (
                        fresh.decide_approval(principal, &groups, &s, ctx),
                        fresh.decide_review(principal, &groups, &s, ctx),
                    );
                    assert_eq!(
                        (
                            warm.decide_approval(principal, &groups, &s, ctx),
                            warm.decide_review(principal, &groups, &s, ctx)
                        ),
                        expect
                    );
                }
                for c in
                    [&["push"][..], &["push", "force-push", "deploy"], &["skip-gate:lint", "advisory-gate:secret-scan"]]
                {
                    for inc in [None, incident(1, "triggered", true)] {
                        let mut r = request(principal, &[], &[], c, "30m");
                        r.groups = groups.clone();
                        r.scopes = s.clone();
                        r.incident = inc;
                        let expect = fresh.decide_request(&r);
                        for _ in 0..2 {
                            assert_eq!(warm.decide_request(&r), expect, "{r:?}");
                        }
                    }
                }
            }
        }
        // The uncached policy kept nothing; the other used both caches, bounded.
        assert_eq!((fresh.entities_cache.len(), fresh.context_cache.len()), (0, 0));
        assert!(warm.entities_cache.len() > 1 && warm.entities_cache.len() <= ENTITIES_CACHE_CAPACITY);
        assert!(warm.context_cache.len() > 1 && warm.context_cache.len() <= CONTEXT_CACHE_CAPACITY);
        // The example table, on a policy that has already decided all of the above.
        let results = run_tests(&warm, EXAMPLE_TESTS).unwrap();
        assert!(results.iter().all(|r| r.passed), "{results:#?}");
    }

    #[test]
    fn cached_entities_and_contexts_are_the_ones_built_from_the_same_inputs() {
        let policy = example();
        let s = scopes(&["git:a/b@refs/heads/main", "pipeline:a/b/deploy@prod"]);
        let groups = ["oncall".to_owned()];
        let built = policy.entities_cached("alice", &groups, &s).unwrap();
        assert!(Arc::ptr_eq(&built, &policy.entities_cached("alice", &groups, &s).unwrap()));
        let refs: Vec<&Scope> = s.iter().collect();
        let (p, resources, entities) = policy.entities("alice", &groups, &refs).unwrap();
        assert_eq!((&built.principal, &built.resources), (&p, &resources));
        let mut cached: Vec<String> = built.entities.iter().map(|e| e.to_string()).collect();
        let mut fresh: Vec<String> = entities.iter().map(|e| e.to_string()).collect();
        cached.sort();
        fresh.sort();
        assert_eq!(cached, fresh);
        // Anything else is built anew.
        for (principal, groups, s) in [
            ("alice", &[][..], &s[..]),
            ("alice", &["oncall".to_owned(), "sre".to_owned()][..], &s[..]),
            ("bob", &groups[..], &s[..]),
            ("alice", &groups[..], &s[..1]),
        ] {
            assert!(!Arc::ptr_eq(&built, &policy.entities_cached(principal, groups, s).unwrap()));
        }

        let ctx = ContextInput {
            requester: "alice".into(),
            duration_ms: 1_800_000,
            reason: "INC-1".into(),
            incident: incident(2, "acknowledged", true),
            now: Timestamp(TEST_MONDAY_MS + 9 * 3_600_000 + 1),
            ..ContextInput::default()
        };
        let cached = policy.context_cached(&ContextKey::new(&ctx)).unwrap();
        assert_eq!(cached, Policy::context(&ctx).unwrap());
        // Inputs that say the same thing share a context: the same hour,
        // the same whole minutes.
        let same = ContextInput { now: Timestamp(ctx.now.0 + 3_599_998), duration_ms: 1_740_001, ..ctx.clone() };
        assert_eq!(ContextKey::new(&same), ContextKey::new(&ctx));
        assert_eq!(policy.context_cached(&ContextKey::new(&same)).unwrap(), Policy::context(&same).unwrap());
        // And any difference is a different context.
        let other_incident = Some(IncidentInput { services: vec!["x".into()], ..ctx.incident.clone().unwrap() });
        for other in [
            ContextInput { now: Timestamp(ctx.now.0 + 3_599_999), ..ctx.clone() },
            ContextInput { now: Timestamp(ctx.now.0 + 86_400_000), ..ctx.clone() },
            ContextInput { duration_ms: 1_800_001, ..ctx.clone() },
            ContextInput { requester: "bob".into(), ..ctx.clone() },
            ContextInput { reason: "INC-2".into(), ..ctx.clone() },
            ContextInput { gate: "tests".into(), ..ctx.clone() },
            ContextInput { overdue_reviews: 1, ..ctx.clone() },
            ContextInput { incident: None, ..ctx.clone() },
            ContextInput { incident: other_incident, ..ctx.clone() },
        ] {
            assert_ne!(ContextKey::new(&other), ContextKey::new(&ctx), "{other:?}");
            let context = policy.context_cached(&ContextKey::new(&other)).unwrap();
            assert_eq!(context, Policy::context(&other).unwrap(), "{other:?}");
            assert_ne!(context, cached, "{other:?}");
        }
    }

    #[test]
    fn the_cache_never_lends_one_principals_groups_to_another() {
        let policy = load(&[(
            "who.cedar",
            r#"
@id("dev-request") permit (principal in Breakglass::Group::"dev", action == Breakglass::Action::"request", resource is Breakglass::GitRef);
@id("alice-push") permit (principal, action == Breakglass::Action::"push", resource is Breakglass::GitRef) when { principal.name == "alice" };
@id("main-only") forbid (principal, action == Breakglass::Action::"request", resource is Breakglass::GitRef) when { resource.ref != "refs/heads/main" };
"#,
        )])
        .unwrap();
        let main = Scope::parse("git:a/b@refs/heads/main").unwrap();
        let dev = Scope::parse("git:a/b@refs/heads/dev").unwrap();
        let ctx = ContextInput::default();
        let g = |gs: &[&str]| gs.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        // Interleaved, twice, so that each decision is made once with its
        // own entities built and once after everyone else's are cached.
        for _ in 0..2 {
            for (principal, groups, action, scope, allowed) in [
                ("alice", g(&["dev"]), "request", &main, true),
                ("bob", g(&[]), "request", &main, false),
                ("bob", g(&["dev"]), "request", &main, true),
                ("alice", g(&[]), "request", &main, false),
                ("alice", g(&["dev"]), "request", &dev, false),
                ("carol", g(&["devs"]), "request", &main, false),
                ("carol", g(&["de", "v"]), "request", &main, false),
                ("alice", g(&[]), "push", &main, true),
                ("bob", g(&["dev"]), "push", &main, false),
                ("alicе", g(&["dev"]), "push", &main, false), // a Cyrillic e
                ("alice ", g(&["dev"]), "push", &main, false),
            ] {
                let d = policy.decide(principal, &groups, action, scope, &ctx);
                assert_eq!(d.allowed, allowed, "{principal} {groups:?} {action} {scope}: {d:?}");
            }
            // Whole requests too: bob's request is decided with bob's groups only.
            let r = request("alice", &["dev"], &["git:a/b@refs/heads/main"], &["push"], "30m");
            assert!(policy.decide_request(&r).allowed);
            let r = request("bob", &["dev"], &["git:a/b@refs/heads/main"], &["push"], "30m");
            let d = policy.decide_request(&r);
            assert!(!d.allowed && d.denials().next().unwrap().to_string().contains("deny push"), "{d:?}");
            let r = request("alice", &[], &["git:a/b@refs/heads/main"], &["push"], "30m");
            assert!(!policy.decide_request(&r).allowed);
        }
    }

    /// A key whose hash is always the same, so that every lookup collides.
    #[derive(Debug, PartialEq)]
    struct Colliding(&'static str);

    impl Hash for Colliding {
        fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
    }

    #[test]
    fn the_cache_compares_whole_keys_and_stays_bounded() {
        let cache: BuildCache<&'static str, usize> = BuildCache::new(4);
        let builds = std::cell::Cell::new(0);
        let get = |key: &'static str| {
            cache
                .get_or_build(
                    &Colliding(key),
                    |k, q| *k == q.0,
                    || {
                        builds.set(builds.get() + 1);
                        Ok::<_, ()>((key, key.len()))
                    },
                )
                .unwrap()
        };
        // Same hash, different keys: each is built, never confused.
        assert_eq!((get("a"), get("bb"), get("a"), get("ccc")), (1, 2, 1, 3));
        assert_eq!(builds.get(), 4);
        // Failures are not kept.
        let failed = cache.get_or_build(&"x", |k, q| k == q, || Err::<(&str, usize), _>("no"));
        assert_eq!(failed, Err("no"));
        assert_eq!(cache.get_or_build(&"x", |k, q| k == q, || Ok::<_, ()>(("x", 9))), Ok(9));
        assert_eq!(cache.get_or_build(&"x", |k, q| k == q, || Ok::<_, ()>(("x", 0))), Ok(9));
        // Bounded.
        for key in ["d", "e", "f", "g", "h", "i", "j"] {
            cache.get_or_build(&key, |k, q| k == q, || Ok::<_, ()>((key, 1))).unwrap();
            assert!(cache.len() <= 4);
        }
    }
}
