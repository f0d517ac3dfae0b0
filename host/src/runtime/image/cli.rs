//! `tug image …`: the node's image store (`<data-dir>/images`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::{ImageStore, PullPolicy, PullProgress, RegistriesConfig};

/// Where the store is.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Tugboat's data directory; images live in `<data-dir>/images`.
    #[arg(long, default_value = "/var/lib/tugboat", env = "TUG_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The registries file (k3s `registries.yaml` format); default
    /// `<data-dir>/registries.yaml`, ignored when missing.
    #[arg(long)]
    pub registries: Option<PathBuf>,
}

impl StoreArgs {
    fn open(&self) -> Result<std::sync::Arc<ImageStore>> {
        let registries_path = self
            .registries
            .clone()
            .unwrap_or_else(|| default_registries_path(&self.data_dir));
        let registries = RegistriesConfig::load(&registries_path)?;
        ImageStore::open(&self.data_dir.join("images"), registries)
    }
}

/// `<data-dir>/registries.yaml`: where the registries file is by default.
pub fn default_registries_path(data_dir: &Path) -> PathBuf {
    data_dir.join("registries.yaml")
}

/// `tug image` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum ImageCmd {
    /// Import images from an OCI image layout or `docker save` tarball (optionally
    /// gzip- or zstd-compressed), e.g. on an air-gapped node.
    Import {
        /// The tarball.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the images in the store.
    Ls {
        /// Print only image ids.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove images: a reference removes that name (the image goes with its last name);
    /// a digest or image id removes the image. Blobs and layers no image uses are then
    /// deleted once older than 10 minutes (younger ones may belong to a running node's pull).
    Rm {
        /// References, manifest digests or image ids.
        #[arg(required = true)]
        images: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Pull an image into the store.
    Pull {
        /// The reference, e.g. `127.0.0.1:5000/busybox:1` or `busybox`.
        reference: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs a `tug image` subcommand.
pub async fn run(cmd: ImageCmd) -> Result<()> {
    match cmd {
        ImageCmd::Import { file, store } => {
            let store = store.open()?;
            let images = store
                .import(&file)
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            for image in images {
                println!("imported {} ({})", image.reference, image.digest);
            }
            Ok(())
        }
        ImageCmd::Ls { quiet, store } => {
            let store = store.open()?;
            let mut images = store.list();
            images.sort_by(|a, b| a.references.cmp(&b.references));
            if quiet {
                for image in images {
                    println!("{}", image.id);
                }
                return Ok(());
            }
            println!(
                "{:<60} {:<19} {:>10}  CREATED",
                "REFERENCE", "IMAGE ID", "SIZE"
            );
            for image in images {
                let id = image.id.trim_start_matches("sha256:");
                let short = id.get(..12).unwrap_or(id);
                let names = if image.references.is_empty() {
                    vec![format!("<none>@{}", image.digest)]
                } else {
                    image.references.clone()
                };
                for name in names {
                    println!(
                        "{name:<60} {short:<19} {:>10}  {}",
                        human_size(image.size),
                        image.created
                    );
                }
            }
            Ok(())
        }
        ImageCmd::Rm { images, store } => {
            let store = store.open()?;
            let mut failed = 0;
            for image in &images {
                match store.remove(image) {
                    Ok(()) => println!("removed {image}"),
                    Err(e) => {
                        eprintln!("{image}: {e}");
                        failed += 1;
                    }
                }
            }
            // Drop the blobs and layers no image uses any more (keeping every image left).
            let keep: HashSet<String> = store.list().into_iter().map(|i| i.digest).collect();
            let report = store.gc(&keep)?;
            if report.blobs + report.layers > 0 {
                println!(
                    "freed {} ({} blobs, {} layers)",
                    human_size(report.bytes),
                    report.blobs,
                    report.layers
                );
            }
            anyhow::ensure!(
                failed == 0,
                "{failed} of {} images not removed",
                images.len()
            );
            Ok(())
        }
        ImageCmd::Pull { reference, store } => {
            let store = store.open()?;
            let image = store
                .ensure(&reference, PullPolicy::Always, &[], &|p| {
                    if let PullProgress::Layer { digest, bytes } = p {
                        eprintln!("layer {digest} ({})", human_size(bytes));
                    }
                })
                .await?;
            println!("{} {}", image.reference, image.digest);
            Ok(())
        }
    }
}

/// `1.5MB`-style sizes.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}
