//! Workers hold only what verifying needs: the verifier home, `serve`'s refusal of a signing
//! home, and the sandbox each analysis worker runs in.

mod common;

use common::*;
use std::path::Path;

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn verifier_home_verifies_without_the_signing_keys() {
    let (home, sealed) = sealed_clip();
    let out = tempfile::tempdir().unwrap();
    let ver = out.path().join("verifier");
    let made = home.run(&["verifier-home", ver.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&made.stderr);
    assert!(made.status.success(), "{said}");
    assert!(
        said.contains("trust anchor") && said.contains("SECRET"),
        "{said}"
    );
    let listed = files(&ver);
    assert!(
        !listed
            .iter()
            .any(|f| f.ends_with("signer.key") || f.ends_with("root-ca.key")),
        "{listed:?}"
    );
    let signer_key = std::fs::read(home.path().join("keys/signer.key")).unwrap();
    let root_key = std::fs::read(home.path().join("keys/root-ca.key")).unwrap();
    for f in &listed {
        let bytes = std::fs::read(ver.join(f)).unwrap();
        assert!(
            bytes != signer_key && bytes != root_key,
            "{f} is a signing key"
        );
    }
    // Its verdicts are the signing home's: the signer trusted, the mark found and named.
    let (code, r) = verify_json(&ver, sealed, &[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["verdict"], "verified", "{r:#}");
    assert_eq!(r["watermark"]["video"]["detected"], true, "{r:#}");
    let config = std::fs::read_to_string(ver.join("config.toml")).unwrap();
    assert!(config.contains("Test Newsroom"), "{config}");
    assert!(
        config.contains(&home.path().join("manifests.sqlite").display().to_string()),
        "{config}"
    );

    // Nothing is overwritten.
    let again = home.run(&["verifier-home", ver.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(ver.join("config.toml")).unwrap(),
        config
    );

    // Without watermark keys: the manifest still verifies, the mark is not found.
    let bare = out.path().join("bare");
    let made = home.run(&[
        "verifier-home",
        bare.to_str().unwrap(),
        "--no-watermark-keys",
        "--store",
        "/nonexistent/store.sqlite",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(
        !files(&bare).iter().any(|f| f.ends_with(".key")),
        "{:?}",
        files(&bare)
    );
    let (_, r) = verify_json(&bare, sealed, &[]);
    assert_eq!(r["verdict"], "verified", "{r:#}");
    assert_ne!(r["watermark"]["video"]["detected"], true, "{r:#}");
    let config = std::fs::read_to_string(bare.join("config.toml")).unwrap();
    assert!(config.contains("/nonexistent/store.sqlite"), "{config}");
}

#[test]
fn serve_refuses_a_home_with_signing_keys() {
    let home = Home::with_keys("Test Newsroom");
    let out = home.run(&["serve", "--listen", "127.0.0.1:0"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("signer.key") && said.contains("root-ca.key"),
        "{said}"
    );
    assert!(said.contains("verifier-home DIR"), "{said}");

    // One private key is enough to refuse.
    std::fs::remove_file(home.path().join("keys/signer.key")).unwrap();
    let out = home.run(&["serve", "--listen", "127.0.0.1:0"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("root-ca.key") && !said.contains("signer.key"),
        "{said}"
    );

    // The verifier home made from it serves.
    let server = Server::start(home.path(), &[]);
    let answer = http(
        &server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.status, 200, "{}", answer.head);
}

/// A probe run as the worker would be: `sh -c SCRIPT sh ./INPUT`, in the sandbox (or not),
/// with the limits a worker gets. Returns (success, stdout, stderr).
fn probe(
    script: &str,
    input: &Path,
    sandbox: Option<&hallmark_web::Sandbox>,
) -> (bool, String, String) {
    let limits = hallmark_web::WorkerLimits {
        cpu_seconds: 30,
        memory: 1 << 30,
        file_size: 1 << 20,
        open_files: 64,
        processes: 48,
    };
    let args = ["-c".into(), script.into(), "sh".into()];
    let mut command =
        hallmark_web::worker_command("/bin/sh".as_ref(), &args, input, sandbox, &limits).unwrap();
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A host laid out as a server's: a signing home with its keys, a verifier home made from it,
/// a store beside the keys, an upload directory holding two uploads.
struct Host {
    _dir: tempfile::TempDir,
    signing_key: std::path::PathBuf,
    verifier: std::path::PathBuf,
    store: std::path::PathBuf,
    uploads: std::path::PathBuf,
    input: std::path::PathBuf,
    other_upload: std::path::PathBuf,
}

fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("signing");
    std::fs::create_dir_all(signing.join("keys")).unwrap();
    let signing_key = signing.join("keys/signer.key");
    std::fs::write(&signing_key, "SIGNING-KEY-SECRET\n").unwrap();
    let store = signing.join("manifests.sqlite");
    std::fs::write(&store, "STORE-BYTES\n").unwrap();
    let verifier = dir.path().join("verifier");
    std::fs::create_dir_all(&verifier).unwrap();
    std::fs::write(verifier.join("config.toml"), "VERIFIER-CONFIG\n").unwrap();
    // A key only its owner may read, as the verifier home keeps its watermark keys.
    std::fs::create_dir_all(verifier.join("keys")).unwrap();
    std::fs::write(verifier.join("keys/watermark.key"), "WATERMARK-KEY\n").unwrap();
    std::fs::set_permissions(
        verifier.join("keys/watermark.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let input = uploads.join(".tmp-upload.mp4");
    std::fs::write(&input, "THE-UPLOAD\n").unwrap();
    let other_upload = uploads.join(".tmp-someone-else.mp4");
    std::fs::write(&other_upload, "SOMEONE-ELSES-UPLOAD\n").unwrap();
    Host {
        _dir: dir,
        signing_key,
        verifier,
        store,
        uploads,
        input,
        other_upload,
    }
}

fn sandbox(host: &Host) -> hallmark_web::Sandbox {
    hallmark_web::Sandbox::detect(vec![host.verifier.clone()], Some(host.store.clone()))
        .unwrap_or_else(|e| panic!("{e} (scripts/setup installs bubblewrap)"))
}

#[test]
fn a_worker_reads_its_input_home_and_store_but_no_key_nor_other_upload() {
    let host = host();
    let sandbox = sandbox(&host);
    let inside = sandbox.store_inside().unwrap();
    assert!(inside.starts_with(hallmark_web::STORE_DIR));
    let script = format!(
        "cat \"$1\"; cat {verifier}/config.toml {verifier}/keys/watermark.key; cat {store} {inside}; \
         cat {key} && echo KEY-READ; cat {other} && echo OTHER-READ; \
         ls {signing_dir} {uploads}; test -r /etc/ld.so.cache && echo LINKER-CACHE; id -u",
        verifier = host.verifier.display(),
        store = host.store.display(),
        inside = inside.display(),
        key = host.signing_key.display(),
        other = host.other_upload.display(),
        signing_dir = host.signing_key.parent().unwrap().display(),
        uploads = host.uploads.display(),
    );
    // Unsandboxed, the same probe reads everything: what the sandbox takes away.
    let (_, open, _) = probe(&script, &host.input, None);
    assert!(
        open.contains("SIGNING-KEY-SECRET") && open.contains("KEY-READ"),
        "{open}"
    );
    assert!(open.contains("SOMEONE-ELSES-UPLOAD"), "{open}");

    let (_, out, err) = probe(&script, &host.input, Some(&sandbox));
    assert!(out.contains("THE-UPLOAD"), "{out}\n{err}");
    assert!(out.contains("VERIFIER-CONFIG"), "{out}\n{err}");
    assert!(out.contains("WATERMARK-KEY"), "{out}\n{err}");
    assert!(out.contains("LINKER-CACHE"), "{out}\n{err}");
    assert!(out.contains("STORE-BYTES"), "{out}\n{err}");
    assert!(
        !out.contains("SIGNING-KEY-SECRET") && !out.contains("KEY-READ"),
        "{out}"
    );
    assert!(
        !out.contains("SOMEONE-ELSES") && !out.contains("OTHER-READ"),
        "{out}"
    );
    assert!(
        !out.contains("signer.key") && !out.contains("someone-else"),
        "{out}"
    );
    assert!(err.contains("No such file"), "{err}");
    assert_eq!(out.lines().last(), Some("65534"), "{out}");
}

#[test]
fn a_worker_cannot_reach_the_network() {
    let host = host();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let script = format!("exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED'");
    let accepted = |listener: &std::net::TcpListener| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        listener.accept().is_ok()
    };
    // Unsandboxed, the probe connects.
    let (ok, out, err) = probe(&script, &host.input, None);
    assert!(ok && out.contains("CONNECTED"), "{out}\n{err}");
    assert!(accepted(&listener));

    let (ok, out, err) = probe(&script, &host.input, Some(&sandbox(&host)));
    assert!(!ok && !out.contains("CONNECTED"), "{out}\n{err}");
    assert!(
        !accepted(&listener),
        "the sandboxed worker reached the server's loopback"
    );
}

#[test]
fn a_worker_writes_only_its_scratch_space() {
    let host = host();
    let outside = tempfile::tempdir().unwrap();
    let sandbox = sandbox(&host);
    let script = format!(
        "echo x > scratch-file && echo SCRATCH-OK; \
         echo x > {outside}/escaped && echo OUTSIDE-WRITTEN; \
         echo x > {verifier}/written && echo HOME-WRITTEN; \
         echo x > {store} && echo STORE-WRITTEN; \
         echo x > {inside} && echo STORE-WRITTEN; \
         echo x > \"$1\" && echo INPUT-WRITTEN; \
         head -c 2000000 /dev/zero > big || echo FILE-SIZE-LIMITED",
        outside = outside.path().display(),
        verifier = host.verifier.display(),
        store = host.store.display(),
        inside = sandbox.store_inside().unwrap().display(),
    );
    let (_, out, err) = probe(&script, &host.input, Some(&sandbox));
    assert!(out.contains("SCRATCH-OK"), "{out}\n{err}");
    for written in [
        "OUTSIDE-WRITTEN",
        "HOME-WRITTEN",
        "STORE-WRITTEN",
        "INPUT-WRITTEN",
    ] {
        assert!(!out.contains(written), "{written}: {out}\n{err}");
    }
    assert!(out.contains("FILE-SIZE-LIMITED"), "{out}\n{err}");
    assert!(!outside.path().join("escaped").exists());
    assert!(!host.verifier.join("written").exists());
    assert_eq!(
        std::fs::read_to_string(&host.store).unwrap(),
        "STORE-BYTES\n"
    );
    assert_eq!(
        std::fs::read_to_string(&host.input).unwrap(),
        "THE-UPLOAD\n"
    );
    assert!(!host.uploads.join("scratch-file").exists());
}

#[test]
fn a_worker_runs_under_its_process_limits() {
    let host = host();
    let (ok, out, err) = probe("cat /proc/self/limits", &host.input, Some(&sandbox(&host)));
    assert!(ok, "{err}");
    let limit = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    assert_eq!(limit("Max cpu time"), "30 35", "{out}");
    assert_eq!(
        limit("Max address space"),
        format!("{0} {0}", 1u64 << 30),
        "{out}"
    );
    assert_eq!(
        limit("Max file size"),
        format!("{0} {0}", 1u64 << 20),
        "{out}"
    );
    assert_eq!(limit("Max open files"), "64 64", "{out}");
    // A user's process limit counts all its processes: set only for a host user of its own.
    if running_as_root() {
        assert_eq!(limit("Max processes"), "48 48", "{out}");
    }
}

fn running_as_root() -> bool {
    // SAFETY: a plain system call.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn serve_refuses_to_start_without_bubblewrap_unless_told() {
    let home = Home::with_keys("Test Newsroom");
    let verifier = verifier_home(home.path());
    let empty = tempfile::tempdir().unwrap();
    let serve = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hallmark"))
            .arg("--home")
            .arg(verifier.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("PATH", empty.path())
            // Killed below without a SIGTERM: its upload directory stays inside the test's own.
            .env("TMPDIR", empty.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out = serve(&[]).wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("bubblewrap") && said.contains("--no-sandbox"),
        "{said}"
    );

    // --no-sandbox serves, and says it is unsandboxed.
    let mut child = serve(&["--no-sandbox"]);
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    for _ in 0..2 {
        std::io::BufRead::read_line(&mut stderr, &mut said).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        said.contains("not sandboxed") && said.contains("serving on"),
        "{said}"
    );
}

/// The worker finds the store wherever it lies: here inside the verifier home itself, which
/// is read-only in the sandbox (SQLite reads it from the sandbox's own store directory).
#[test]
fn a_sandboxed_worker_recovers_a_manifest_from_a_store_in_the_verifier_home() {
    let (home, sealed) = sealed_clip();
    let verifier = tempfile::tempdir().unwrap();
    let store = verifier.path().join("copy.sqlite");
    let made = home.run(&[
        "verifier-home",
        verifier.path().to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::copy(home.path().join("manifests.sqlite"), &store).unwrap();
    let server = Server::start_from(verifier, &[], &[]);
    let stripped = strip_manifest(sealed, "sandbox-stripped.mp4");
    let (head, body) = verify_request("stripped.mp4", &std::fs::read(stripped).unwrap());
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&body);
    let answer = http(&server.addr, &raw);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let r: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(r["recovered_manifest"]["status"], "recovered", "{r:#}");
    assert!(!answer.body.contains(hallmark_web::STORE_DIR), "{r:#}");
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
        .count()
}

/// The processes that run exactly `sleep SECONDS`.
fn sleepers(seconds: &str) -> Vec<u32> {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            (cmdline == wanted.as_bytes()).then_some(pid)
        })
        .collect()
}

/// A sandboxed `sleep SECONDS` (unique to this test run), started and seen running.
fn sandboxed_sleep(host: &Host) -> (std::process::Child, String, u32) {
    let seconds = format!("{}", 3000 + std::process::id() % 1000 + rand_offset());
    let args = [
        "-c".into(),
        format!("sleep {seconds}; true").into(),
        "sh".into(),
    ];
    let mut command = hallmark_web::worker_command(
        "/bin/sh".as_ref(),
        &args,
        &host.input,
        Some(&sandbox(host)),
        &hallmark_web::WorkerLimits::default(),
    )
    .unwrap();
    let child = command.spawn().unwrap();
    let started = std::time::Instant::now();
    // Wait for the sleep itself: bwrap and the shell carry the number in their command lines
    // long before it runs.
    while sleepers(&seconds).is_empty() && started.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pids = sleepers(&seconds);
    assert_eq!(pids.len(), 1, "the probe did not start: {pids:?}");
    (child, seconds, pids[0])
}

/// Distinct numbers for the tests of one run that sleep at the same time.
fn rand_offset() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    1000 * NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Ending the worker command (as the server does at its time limit, or by dying) ends what
/// runs in the sandbox.
#[test]
fn a_killed_worker_leaves_nothing_running() {
    let host = host();
    let (mut child, seconds, _) = sandboxed_sleep(&host);
    let marker = format!("sleep {seconds}");
    child.kill().unwrap();
    child.wait().unwrap();
    let ended = std::time::Instant::now();
    while (processes_with(&marker) > 0 || !sleepers(&seconds).is_empty())
        && ended.elapsed().as_secs() < 5
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        (processes_with(&marker), sleepers(&seconds).len()),
        (0, 0),
        "the sandboxed worker outlived its command"
    );
}

/// Started by root, a worker is a host user of its own, seen from outside the sandbox:
/// uid and gid 65534, no groups, no capabilities of any kind, no way to gain one.
#[test]
fn a_worker_started_by_root_is_a_host_user_of_its_own() {
    if !running_as_root() {
        eprintln!("skipped: only a server started as root gives its workers a user of their own");
        return;
    }
    let host = host();
    let (mut child, _, pid) = sandboxed_sleep(&host);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    child.kill().unwrap();
    child.wait().unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), "65534 65534 65534 65534", "{status}");
    assert_eq!(field("Gid:"), "65534 65534 65534 65534", "{status}");
    assert_eq!(field("Groups:"), "", "{status}");
    for caps in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(caps), "0000000000000000", "{caps} {status}");
    }
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    // The upload was handed to it; nothing else of the host's was.
    let meta = std::fs::metadata(&host.input).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
    let key = std::fs::metadata(&host.signing_key).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&key), 0);
}

/// A fork bomb in a worker started by root meets its process limit.
#[test]
fn a_worker_started_by_root_cannot_fork_without_bound() {
    if !running_as_root() {
        eprintln!("skipped: the process limit is set only for a worker's user of its own");
        return;
    }
    let host = host();
    // 100 background sleeps under a limit of 48 processes for the user.
    let script =
        "i=0; while [ $i -lt 100 ]; do (sleep 20 &) 2>/dev/null || { echo LIMITED; break; }; \
                  i=$((i+1)); done; echo STARTED $i";
    let (_, out, err) = probe(script, &host.input, Some(&sandbox(&host)));
    assert!(out.contains("LIMITED"), "{out}\n{err}");
    let started: usize = out
        .split_whitespace()
        .skip_while(|w| *w != "STARTED")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(started < 48, "{out}");
}

/// Started by root, the workers' user must be able to read the store: said at start-up, not
/// found out upload by upload.
#[test]
fn a_store_the_workers_user_cannot_read_is_refused_at_start() {
    if !running_as_root() {
        eprintln!("skipped: only a server started as root gives its workers a user of their own");
        return;
    }
    let host = host();
    std::fs::set_permissions(
        &host.store,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let refused =
        hallmark_web::Sandbox::detect(vec![host.verifier.clone()], Some(host.store.clone()))
            .expect_err("a 0600 store was accepted");
    assert!(
        refused.contains("not readable") && refused.contains("chmod o+r"),
        "{refused}"
    );
    std::fs::set_permissions(
        &host.store,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    sandbox(&host);
}
