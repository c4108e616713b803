//! Which image a run uses: the runtime image (checked for staleness by its labels), or
//! a derived image with the configured pinned packages, built once and cached by a
//! content hash.

use crate::config::sha256_hex;
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use std::time::Duration;

/// Tag of the runtime image built by `cargo xtask image`.
pub const DEFAULT_IMAGE: &str = "spr-runtime:latest";
pub(crate) const LABEL_MANAGED: &str = "dev.spr.managed";
pub(crate) const LABEL_KIND: &str = "dev.spr.kind";
pub(crate) const LABEL_PROTOCOL: &str = "dev.spr.protocol";
pub(crate) const LABEL_HARNESS: &str = "dev.spr.harness-hash";
pub(crate) const LABEL_OWNER: &str = "dev.spr.owner";
pub(crate) const LABEL_POOL: &str = "dev.spr.pool";
pub(crate) const LABEL_ENGINE: &str = "dev.spr.engine";
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// An image found on a daemon: its ID and the architecture it is built for (the
/// runs' seccomp filter names system calls by that architecture's numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRef {
    pub id: String,
    pub arch: Option<String>,
}

/// Find the image and check that it carries this build's harness.
pub(crate) async fn check_image(
    docker: &Docker,
    reference: &str,
    endpoint: &str,
) -> Result<ImageRef, String> {
    let inspect = match docker.inspect_image(reference).await {
        Ok(i) => i,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            return Err(if reference == DEFAULT_IMAGE {
                format!(
                    "Docker image '{reference}' was not found on {endpoint}. Build it with `cargo xtask image` \
                     (with DOCKER_HOST set to that daemon for a remote one)"
                )
            } else {
                format!(
                    "Docker image '{reference}' was not found on {endpoint}. Build or load it there \
                     (images for spr are built FROM the runtime image of `cargo xtask image`)"
                )
            })
        }
        Err(e) => {
            return Err(format!(
                "Cannot inspect Docker image '{reference}' on {endpoint}: {e}"
            ))
        }
    };
    let labels = inspect
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let protocol = labels
        .get(LABEL_PROTOCOL)
        .map(String::as_str)
        .unwrap_or("none");
    let harness = labels
        .get(LABEL_HARNESS)
        .map(String::as_str)
        .unwrap_or("none");
    let want_protocol = spr_protocol::PROTOCOL_VERSION.to_string();
    let want_harness = spr_protocol::harness_hash();
    if protocol != want_protocol || harness != want_harness {
        return Err(format!(
            "Docker image '{reference}' is stale: it carries protocol {protocol} and harness {harness}, \
             this build of spr needs protocol {want_protocol} and harness {want_harness}. \
             Rebuild it with `cargo xtask image`"
        ));
    }
    let id = inspect
        .id
        .ok_or_else(|| format!("Docker image '{reference}' has no ID"))?;
    Ok(ImageRef {
        id,
        arch: inspect.architecture,
    })
}

/// Tag of the derived image for a base image and a package set.
pub(crate) fn env_tag(base_id: &str, namespace: Option<&str>, packages: &[String]) -> String {
    let text = format!(
        "{base_id}|{}|{}",
        namespace.unwrap_or(""),
        packages.join("|")
    );
    format!("spr-env:{}", &sha256_hex(text.as_bytes())[..16])
}

/// The Dockerfile of a derived image. pip runs in exec form, so a spec is never seen by
/// a shell.
pub(crate) fn env_dockerfile(
    base_id: &str,
    tag: &str,
    packages: &[String],
    with_ca: bool,
) -> String {
    let mut argv = vec![
        "python3".to_string(),
        "-m".into(),
        "pip".into(),
        "install".into(),
        "--no-cache-dir".into(),
        "--disable-pip-version-check".into(),
    ];
    argv.extend(packages.iter().cloned());
    let run = serde_json::to_string(&argv).unwrap_or_default();
    let hash = tag.rsplit(':').next().unwrap_or_default();
    // Where the host reaches PyPI through a TLS-inspecting proxy, pip in the build
    // container must trust the same CA bundle as the host does.
    let ca = if with_ca {
        format!("COPY {CA_FILE} /etc/spr/ca.crt\nENV PIP_CERT=/etc/spr/ca.crt\n")
    } else {
        String::new()
    };
    format!(
        "FROM {base_id}\n\
         USER 0:0\n\
         ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore\n\
         {ca}\
         RUN {run}\n\
         USER 65534:65534\n\
         LABEL {LABEL_MANAGED}=\"true\" {LABEL_KIND}=\"env\" dev.spr.env-hash=\"{hash}\"\n"
    )
}

/// Use the derived image if it exists, else build it (once; the caller serialises).
pub(crate) async fn ensure_env_image(
    docker: &Docker,
    base_id: &str,
    namespace: Option<&str>,
    packages: &[String],
    endpoint: &str,
) -> Result<ImageRef, String> {
    let tag = env_tag(base_id, namespace, packages);
    if let Ok(image) = check_image(docker, &tag, endpoint).await {
        return Ok(image);
    }
    let ca = host_ca_bundle();
    let dockerfile = env_dockerfile(base_id, &tag, packages, ca.is_some());
    let mut files = vec![("Dockerfile", dockerfile.into_bytes())];
    if let Some(bundle) = ca {
        files.push((CA_FILE, bundle));
    }
    let context = tar_files(&files);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .build();
    let build = async {
        let mut stream =
            docker.build_image(options, None, Some(bollard::body_full(context.into())));
        let mut log = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        return Err(detail.message.unwrap_or_else(|| "build failed".into()));
                    }
                    if let Some(s) = info.stream {
                        log.push_str(&s);
                        if log.len() > 4096 {
                            // pip's progress output is not ASCII: cut at a character.
                            let mut cut = log.len() - 4096;
                            while !log.is_char_boundary(cut) {
                                cut += 1;
                            }
                            log.drain(..cut);
                        }
                    }
                }
                Err(e) => return Err(format!("{e}\n{}", log.trim())),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(BUILD_TIMEOUT, build).await {
        Err(_) => {
            return Err(format!(
                "Failed to build package image {tag}: no result within {} s",
                BUILD_TIMEOUT.as_secs()
            ))
        }
        Ok(Err(e)) => {
            return Err(format!(
                "Failed to build package image {tag} with {}: {}",
                packages.join(" "),
                e.trim()
            ))
        }
        Ok(Ok(())) => {}
    }
    check_image(docker, &tag, endpoint).await
}

/// Name of the host's CA bundle inside a build context.
const CA_FILE: &str = "spr-host-ca.crt";

/// The CA bundle the host's own Python tooling trusts, if it names or has one.
fn host_ca_bundle() -> Option<Vec<u8>> {
    let from_env = ["PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"]
        .iter()
        .filter_map(std::env::var_os)
        .map(std::path::PathBuf::from);
    from_env
        .chain(std::iter::once("/etc/ssl/certs/ca-certificates.crt".into()))
        .find_map(|path| std::fs::read(path).ok())
}

/// A tar archive of regular files, each readable by everyone.
pub(crate) fn tar_files(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        out.extend_from_slice(&tar_entry(name, data));
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn tar_entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let put = |h: &mut [u8; 512], off: usize, bytes: &[u8]| {
        h[off..off + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", data.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    let sum: u32 = header.iter().map(|b| *b as u32).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_has_a_valid_header() {
        let t = tar_files(&[("Dockerfile", b"FROM x\n".to_vec())]);
        assert_eq!(t.len(), 512 + 512 + 1024);
        assert_eq!(&t[0..10], b"Dockerfile");
        assert_eq!(&t[257..262], b"ustar");
        // Checksum: sum of the header with the checksum field read as spaces.
        let mut h = t[..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|b| *b as u32).sum::<u32>());
        assert_eq!(&t[512..519], b"FROM x\n");
    }

    #[test]
    fn env_images_are_content_addressed_and_never_shell_quoted() {
        let a = env_tag("sha256:1", None, &["a==1".into()]);
        assert!(a.starts_with("spr-env:"));
        assert_eq!(a, env_tag("sha256:1", None, &["a==1".into()]));
        assert_ne!(a, env_tag("sha256:2", None, &["a==1".into()]));
        assert_ne!(a, env_tag("sha256:1", Some("ns"), &["a==1".into()]));
        let d = env_dockerfile("sha256:1", &a, &["x==1.0;rm".into()], false);
        assert!(d.contains(r#"RUN ["python3","-m","pip","install","--no-cache-dir","--disable-pip-version-check","x==1.0;rm"]"#), "{d}");
        assert!(d.contains("USER 65534:65534"));
        assert!(d.contains("dev.spr.managed=\"true\""));
    }
}
