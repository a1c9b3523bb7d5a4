//! `shoal`: the admin CLI.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("no subcommands yet: the CRUSH tools and the cluster commands are being built")
}
