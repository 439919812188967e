//! Hosted forges end to end (issue 16): a real `breakglass serve`, configured
//! with `[[forge]]` (a token file), opens a GitHub repository (the loopback
//! fake built from GitHub's documented shapes) for a grant's holder when the
//! grant is approved, and closes it when it is revoked; `forge install`
//! records the baseline and `forge status` shows who holds a bypass.

use breakglass_forgefake::{GithubConfig, GithubFake, Permission, RepoConfig, TeamConfig, UserConfig};
use breakglass_testkit::files::write_private;
use breakglass_testkit::ssh::keygen;
use serde_json::Value;

use crate::served::Served;

const MAIN: &str = "git:payments/api@refs/heads/main";
const TOKEN: &str = "ghp_e2e_token_for_the_forge_test";

#[test]
fn a_served_breakglass_opens_github_for_a_grant_and_closes_it_and_the_cli_shows_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt
        .block_on(GithubFake::start(
            GithubConfig::new("acme")
                .repo(RepoConfig::new("acme/payments-api", 404, "main", &"1".repeat(40)))
                .user(UserConfig::member("erin-gh", 5001))
                .user(UserConfig::member("breakglass-bot", 5999))
                .team(TeamConfig::new("bg-payments", 77))
                .token(TOKEN, Permission::Admin, "breakglass-bot"),
        ))
        .unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("github.token");
    write_private(&token_file, TOKEN);
    let config = format!(
        "[log]\norigin = \"e2e.breakglass.test/log\"\n\n\
         [[forge]]\nname = \"github\"\nkind = \"github\"\napi_url = \"{}\"\ntoken_file = \"{}\"\n\n\
         [[forge.repo]]\nname = \"payments/api\"\nforge_repo = \"acme/payments-api\"\nprotected = [\"refs/heads/main\"]\nteam = \"acme/bg-payments\"\n",
        fake.url(),
        token_file.display()
    );
    let srv = Served::start_with_config(&config);
    let keydir = srv.path("keys");
    std::fs::create_dir(&keydir).unwrap();
    let (erin_key, erin_pub) = keygen(&keydir, "erin").into_parts();
    let (carol_key, carol_pub) = keygen(&keydir, "carol").into_parts();
    std::fs::write(
        srv.data.join("principals.toml"),
        format!(
            "[[principal]]\nname = \"erin\"\ngroups = [\"oncall\"]\nssh_keys = [\"{erin_pub}\"]\naccounts = [\"github:erin-gh\"]\n\n\
             [[principal]]\nname = \"carol\"\ngroups = [\"approvers\"]\nssh_keys = [\"{carol_pub}\"]\n"
        ),
    )
    .unwrap();
    srv.ok("admin", &["policy", "reload"]);
    srv.ok("erin", &["login", "--principal", "erin", "--key", erin_key.to_str().unwrap()]);
    srv.ok("carol", &["login", "--principal", "carol", "--key", carol_key.to_str().unwrap()]);

    // The protection is installed and recorded first.
    let installed = srv.json("admin", &["forge", "install", "--repo", "payments/api"]);
    assert_eq!(installed["protection_matches_baseline"], true, "{installed}");
    assert_eq!(fake.ruleset_ids("acme/payments-api").len(), 1);

    let g = srv.json("erin", &["request", "--scope", MAIN, "--cap", "push", "--for", "30m", "--reason", "INC-9 fix"]);
    assert_eq!(g["state"], "pending", "{g}");
    let id = g["id"].as_str().unwrap().to_owned();
    assert!(fake.team_members("bg-payments").is_empty(), "nothing opened while pending");
    // The approval answers once the bypass is live (the server's worker applied it).
    let g = srv.json("carol", &["approve", &id]);
    assert_eq!(g["state"], "active", "{g}");
    assert_eq!(
        (g["forge"][0]["action"].as_str(), g["forge"][0]["status"].as_str()),
        (Some("apply"), Some("done")),
        "{g}"
    );
    assert_eq!(fake.team_members("bg-payments"), ["erin-gh"]);
    let status = srv.json("admin", &["forge", "status"]);
    let holders = &status["repos"][0]["holders"];
    assert_eq!(holders[0]["login"], "erin-gh", "{status}");
    assert_eq!(holders[0]["covered"], true, "{status}");
    let text = srv.ok("admin", &["forge", "status"]);
    assert!(text.contains("erin-gh (id 5001): covered by an effective grant"), "{text}");

    // Revoked: the worker removes it right away; `show` says when it is done.
    srv.ok("erin", &["revoke", &id, "--reason", "fixed"]);
    let mut last = Value::Null;
    for _ in 0..300 {
        last = srv.json("erin", &["show", &id]);
        if last["forge"].as_array().is_some_and(|f| f.iter().any(|j| j["action"] == "remove" && j["status"] == "done"))
        {
            break;
        }
    }
    assert!(
        last["forge"].as_array().unwrap().iter().any(|j| j["action"] == "remove" && j["status"] == "done"),
        "{last}"
    );
    assert!(fake.team_members("bg-payments").is_empty());
    let tail = srv.ok("admin", &["audit", "tail", "--data-dir", srv.data.to_str().unwrap(), "-n", "40"]);
    for kind in ["forge.baseline", "forge.bypass.applied", "forge.bypass.removed"] {
        assert!(tail.contains(kind), "{kind} missing from:\n{tail}");
    }
    srv.ok("admin", &["audit", "verify", "--data-dir", srv.data.to_str().unwrap()]);
    drop(srv);
    drop(fake);
}
