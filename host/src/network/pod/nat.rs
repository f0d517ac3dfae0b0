//! Masquerading of pod traffic that leaves the cluster: one nftables table of the node
//! agent's own (family `ip`, name configurable, default `tugboat-nat`), replaced whole in
//! one `nft -j -f -` transaction whenever its rules change, deleted on `cleanup_node`.
//! The host's other rulesets are never touched.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::cidr::Cidr;
use super::netns;

const NFT_TIMEOUT: Duration = Duration::from_secs(10);

/// The masquerade rules of the node (source CIDR → excluded destinations).
pub(crate) struct Masquerade {
    table: String,
    netns: Option<PathBuf>,
    rules: tokio::sync::Mutex<BTreeMap<Cidr, Vec<Cidr>>>,
}

fn prefix(c: &Cidr) -> Value {
    json!({"prefix": {"addr": c.network().addr.to_string(), "len": c.prefix}})
}

impl Masquerade {
    pub fn new(table: String, netns: Option<PathBuf>) -> Self {
        Masquerade {
            table,
            netns,
            rules: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Masquerades traffic from `source` to anything outside `exclude`; enables IPv4
    /// forwarding in the node netns. Reprograms the table only when the rules changed.
    pub async fn ensure(&self, source: Cidr, exclude: Vec<Cidr>) -> Result<()> {
        if !matches!(source.addr, IpAddr::V4(_)) || exclude.iter().any(|c| !c.addr.is_ipv4()) {
            bail!("only IPv4 masquerading is supported");
        }
        let mut rules = self.rules.lock().await;
        if rules.get(&source) == Some(&exclude) && self.exists().await? {
            return Ok(());
        }
        let mut next = rules.clone();
        next.insert(source, exclude);
        forward_ipv4(self.netns.as_deref()).await?;
        self.program(&next).await?;
        *rules = next;
        Ok(())
    }

    fn ruleset(&self, rules: &BTreeMap<Cidr, Vec<Cidr>>) -> Value {
        let t = &self.table;
        let mut cmds = vec![
            json!({"add": {"table": {"family": "ip", "name": t}}}),
            json!({"delete": {"table": {"family": "ip", "name": t}}}),
            json!({"add": {"table": {"family": "ip", "name": t}}}),
            json!({"add": {"chain": {"family": "ip", "table": t, "name": "postrouting",
                "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
        ];
        for (source, exclude) in rules {
            let mut expr = vec![json!({"match": {"op": "==",
                "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": prefix(source)}})];
            for e in exclude {
                expr.push(json!({"match": {"op": "!=",
                    "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                    "right": prefix(e)}}));
            }
            expr.push(json!({"masquerade": null}));
            cmds.push(json!({"add": {"rule": {"family": "ip", "table": t,
                "chain": "postrouting", "comment": format!("tugboat pods {source}"),
                "expr": expr}}}));
        }
        json!({"nftables": cmds})
    }

    async fn program(&self, rules: &BTreeMap<Cidr, Vec<Cidr>>) -> Result<()> {
        let ruleset = self.ruleset(rules);
        nft(
            self.netns.as_deref(),
            &["-j", "-f", "-"],
            Some(ruleset.to_string()),
        )
        .await
        .with_context(|| format!("programming nftables table ip {}", self.table))?;
        Ok(())
    }

    /// Whether the table exists.
    pub async fn exists(&self) -> Result<bool> {
        match nft(
            self.netns.as_deref(),
            &["-j", "list", "table", "ip", &self.table],
            None,
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if format!("{e:#}").contains("No such file or directory") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The table's ruleset as `nft -j list table` prints it (`None` when absent).
    #[cfg(test)]
    pub async fn list(&self) -> Result<Option<Value>> {
        if !self.exists().await? {
            return Ok(None);
        }
        let out = nft(
            self.netns.as_deref(),
            &["-j", "list", "table", "ip", &self.table],
            None,
        )
        .await?;
        Ok(Some(
            serde_json::from_str(&out).context("parsing nft's JSON listing")?,
        ))
    }

    /// Deletes the table (no error when absent).
    pub async fn remove(&self) -> Result<()> {
        let mut rules = self.rules.lock().await;
        let cmds = json!({"nftables": [
            {"add": {"table": {"family": "ip", "name": self.table}}},
            {"delete": {"table": {"family": "ip", "name": self.table}}},
        ]});
        nft(
            self.netns.as_deref(),
            &["-j", "-f", "-"],
            Some(cmds.to_string()),
        )
        .await
        .with_context(|| format!("deleting nftables table ip {}", self.table))?;
        rules.clear();
        Ok(())
    }
}

/// Runs `nft` in the netns with `args`, `stdin` written to it; its stdout, or an error
/// with its stderr.
pub(crate) async fn nft(
    netns: Option<&Path>,
    args: &[&str],
    stdin: Option<String>,
) -> Result<String> {
    let mut cmd = tokio::process::Command::new("nft");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let _fd = netns::command_in(&mut cmd, netns)?;
    let mut child = cmd
        .spawn()
        .context("running nft (is nftables installed?)")?;
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(input.as_bytes())
            .await
            .context("writing nft's input")?;
        drop(pipe);
    }
    let out = tokio::time::timeout(NFT_TIMEOUT, child.wait_with_output())
        .await
        .context("nft did not finish within 10 s")?
        .context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `net.ipv4.ip_forward = 1` in the netns (pods reach beyond the node through it).
pub(crate) async fn forward_ipv4(netns: Option<&Path>) -> Result<()> {
    netns::run_in(netns, || {
        let path = "/proc/sys/net/ipv4/ip_forward";
        if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
            return Ok(());
        }
        std::fs::write(path, "1").context("enabling net.ipv4.ip_forward")
    })
    .await
}
