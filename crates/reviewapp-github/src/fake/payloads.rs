//! Payloads shaped like GitHub's documented ones, to seed the fake and to deliver as webhooks.

use serde_json::{Value, json};

/// A pull request object as the API returns it (and as a webhook payload carries it).
pub fn pull_request_json(owner: &str, repo: &str, number: u64, sha: &str, branch: &str) -> Value {
    let repository = repository_json(owner, repo, 4242);
    json!({
        "url": format!("https://api.github.com/repos/{owner}/{repo}/pulls/{number}"),
        "id": 100_000 + number,
        "number": number,
        "state": "open",
        "locked": false,
        "title": "A change",
        "user": {"login": "octocat", "id": 1, "type": "User"},
        "body": null,
        "labels": [],
        "draft": false,
        "merged": false,
        "head": {"label": format!("{owner}:{branch}"), "ref": branch, "sha": sha,
                 "user": {"login": owner}, "repo": repository},
        "base": {"label": format!("{owner}:main"), "ref": "main",
                 "sha": "0000000000000000000000000000000000000000",
                 "user": {"login": owner}, "repo": repository},
        "author_association": "MEMBER",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    })
}

/// A repository object.
pub fn repository_json(owner: &str, repo: &str, id: u64) -> Value {
    json!({
        "id": id,
        "node_id": "R_1",
        "name": repo,
        "full_name": format!("{owner}/{repo}"),
        "private": false,
        "owner": {"login": owner, "id": 2, "type": "Organization"},
        "fork": false,
        "default_branch": "main",
    })
}

/// A `pull_request` webhook payload: `action`, `number`, `pull_request`, `repository`,
/// `sender`, `installation` (and `label` for `labeled`/`unlabeled`).
pub fn event_json(action: &str, pull: &Value, label: Option<&str>) -> Value {
    let repository = pull["base"]["repo"].clone();
    let mut event = json!({
        "action": action,
        "number": pull["number"],
        "pull_request": pull,
        "repository": repository,
        "sender": {"login": "octocat", "id": 1, "type": "User"},
        "installation": {"id": 7, "node_id": "I_1"},
    });
    if let Some(label) = label {
        event["label"] = json!({"id": 1, "name": label, "color": "ededed"});
    }
    event
}
