//! The analysis worker's sandbox: bubblewrap (`bwrap`) and resource limits.
//!
//! An upload that exploits a decoder runs code in its worker. The worker therefore sees a file
//! system of its own: the system's libraries (`/usr` and its links), the few files of `/etc` the
//! dynamic linker reads, its own binary and the verifier home (read-only), the manifest store
//! (read-only, in [`STORE_DIR`]), its one input (read-only) and a small writable scratch space (`/scratch`, its
//! working directory, and `/tmp`: memory file systems of `file_size` bytes each). Nothing else
//! of the host exists there: no home directory, no signing key, no other upload. It has no
//! network (its own empty network namespace), its own PID, IPC and UTS namespaces, no
//! capabilities, a clean environment, and dies with the server. The process limits (CPU time,
//! address space, file size, open files; processes too when it has a user of its own) are set
//! before `bwrap` starts, and hold for everything it runs.
//!
//! Whose the worker is depends on who starts it:
//! - **the server runs as root**: the worker is a separate host user, uid/gid 65534
//!   (`nobody`), with no groups, no capabilities (bounding set emptied) and `no_new_privs`,
//!   switched by `setpriv` (util-linux) inside the sandbox that `bwrap` built with root's
//!   rights, without a user namespace. Even an escape from its mount namespace meets files as
//!   `nobody`, not as root, and a fork bomb meets RLIMIT_NPROC. Since `nobody` may not read the
//!   verifier home's files (its keys are 0600), the small files the worker reads (config, trust
//!   anchors, watermark keys) are *copied* into the sandbox (`--ro-bind-data`, mode 0444);
//!   the upload is handed to the worker's user; the store must be world-readable.
//! - **an unprivileged server**: the worker runs in a user namespace of its own as uid/gid
//!   65534 there (mapped to the server's user outside: a host user of its own needs root).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Where the sandbox's input and scratch space lives (the worker's working directory).
pub const SCRATCH: &str = "/scratch";

/// Environment variables the worker keeps (all others are cleared: the server's environment
/// may hold secrets).
const KEPT_ENV: [&str; 5] = ["LD_LIBRARY_PATH", "LANG", "LC_ALL", "TZ", "RUST_BACKTRACE"];

/// The system directories bound read-only (a top-level symbolic link, e.g. `/lib -> usr/lib`,
/// is recreated as a link).
const SYSTEM_DIRS: [&str; 8] = [
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/etc/alternatives",
];

/// Files of `/etc` the worker may read: the dynamic linker's, time zones, CA certificates.
/// Not `/etc` as a whole (it holds `shadow`, SSH host keys, …).
const ETC_FILES: [&str; 5] = [
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/ssl/certs",
];

/// How the worker is confined.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The `bwrap` binary.
    pub bwrap: PathBuf,
    /// Files and directories the worker may read, bound read-only at the same path (its
    /// binary, the verifier home). Absolute paths.
    pub read_only: Vec<PathBuf>,
    /// The manifest store (SQLite): the file and its `-wal` / `-shm` companions are bound
    /// read-only into [`STORE_DIR`], an otherwise empty directory of the sandbox's own (not
    /// the store's directory: a store beside a signing home's `keys/` must not bring them
    /// along). The worker is to be given [`Sandbox::store_inside`].
    pub store: Option<PathBuf>,
    /// The host user the worker runs as (only when the server runs as root; see the module's
    /// documentation). `None`: the server's own user, in a user namespace.
    pub host_user: Option<HostUser>,
}

/// A host user of the worker's own, and the `setpriv` that switches to it.
#[derive(Debug, Clone)]
pub struct HostUser {
    pub uid: u32,
    pub gid: u32,
    /// `setpriv` (util-linux).
    pub setpriv: PathBuf,
}

/// `nobody`: the worker's user when the server runs as root.
pub const WORKER_UID: u32 = 65534;

/// Files of the verifier home larger than this are not copied into the sandbox (the home
/// holds a config, PEM certificates and 32-byte keys; anything larger is not the worker's).
const MAX_COPIED_FILE: u64 = 1 << 20;
/// At most this many files are copied from the verifier home.
const MAX_COPIED_FILES: usize = 64;

/// Where the sandbox shows the manifest store (a memory file system, so that SQLite may make
/// its lock files beside the read-only store).
pub const STORE_DIR: &str = "/run/hallmark-store";

/// Process limits of a worker (each 0: not set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLimits {
    /// RLIMIT_CPU, seconds of CPU time (all threads together); SIGKILL a few seconds later.
    pub cpu_seconds: u64,
    /// RLIMIT_AS, bytes of address space.
    pub memory: u64,
    /// RLIMIT_FSIZE, the largest file it may write; also the size of each scratch file system.
    pub file_size: u64,
    /// RLIMIT_NOFILE, open file descriptors.
    pub open_files: u64,
    /// RLIMIT_NPROC, processes and threads of the worker's user (all its workers together:
    /// the kernel counts per user). Set only when the worker has a host user of its own
    /// ([`Sandbox::host_user`]): for the server's own user it would count the server too.
    pub processes: u64,
}

impl Default for WorkerLimits {
    fn default() -> WorkerLimits {
        WorkerLimits {
            cpu_seconds: 600,
            memory: 4 << 30,
            file_size: 64 << 20,
            open_files: 256,
            processes: 0,
        }
    }
}

impl Sandbox {
    /// The store's path inside the sandbox: what the worker's `--store` names.
    pub fn store_inside(&self) -> Option<PathBuf> {
        let name = self.store.as_ref()?.file_name()?;
        Some(Path::new(STORE_DIR).join(name))
    }

    /// A sandbox with `bwrap` from `PATH`, checked to work here: it runs
    /// `true` (from `/usr/bin`) in the same confinement a worker gets. The error says what is
    /// missing and how to install it.
    pub fn detect(read_only: Vec<PathBuf>, store: Option<PathBuf>) -> Result<Sandbox, String> {
        let bwrap = find_in_path("bwrap").ok_or_else(|| {
            "bubblewrap (bwrap) is not installed: each analysis worker runs in its sandbox. \
             Install it (Debian/Ubuntu: apt-get install bubblewrap; scripts/setup does), or pass \
             --no-sandbox (unsafe on the open internet: a worker exploited by an upload could \
             read and reach everything the server can)"
                .to_string()
        })?;
        // SAFETY: a plain system call.
        let host_user = if unsafe { libc::geteuid() } == 0 {
            let setpriv = find_in_path("setpriv").ok_or_else(|| {
                "setpriv (util-linux) is not installed: run as root, the analysis workers switch \
                 to their own user with it. Install util-linux, or run the server as an \
                 unprivileged user"
                    .to_string()
            })?;
            Some(HostUser {
                uid: WORKER_UID,
                gid: WORKER_UID,
                setpriv,
            })
        } else {
            None
        };
        let sandbox = Sandbox {
            bwrap,
            read_only,
            store,
            host_user,
        };
        if let (Some(user), Some(store)) = (&sandbox.host_user, &sandbox.store) {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(store) {
                if meta.permissions().mode() & 0o004 == 0 {
                    return Err(format!(
                        "the manifest store {} is not readable by the analysis workers' user \
                         (uid {}): make it world-readable (chmod o+r; its records are public \
                         through the soft-binding API anyway)",
                        store.display(),
                        user.uid
                    ));
                }
            }
        }
        let probe = tempfile::Builder::new()
            .prefix("hallmark-sandbox-probe-")
            .tempfile()
            .map_err(|e| format!("cannot check the sandbox: {e}"))?;
        let mut command = worker_command(
            OsStr::new("/usr/bin/true"),
            &[],
            probe.path(),
            Some(&sandbox),
            &WorkerLimits::default(),
        )
        .map_err(|e| format!("cannot check the sandbox: {e}"))?;
        let output = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", sandbox.bwrap.display()))?;
        if !output.status.success() {
            return Err(format!(
                "the worker sandbox does not work here ({} says: {}); user namespaces may be \
                 disabled (sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces), \
                 or pass --no-sandbox (unsafe on the open internet)",
                sandbox.bwrap.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(sandbox)
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The command that runs `program args… ./NAME` on `input` (NAME: its file name), in the
/// sandbox when there is one (input bound read-only into `/scratch`, the working directory),
/// else in `input`'s directory; with `limits` set in the child before it starts. The caller
/// sets stdin/stdout/stderr. With a host user of its own, the input is handed to that user
/// (it must read it).
pub fn worker_command(
    program: &OsStr,
    args: &[OsString],
    input: &Path,
    sandbox: Option<&Sandbox>,
    limits: &WorkerLimits,
) -> std::io::Result<std::process::Command> {
    let (Some(dir), Some(name)) = (input.parent(), input.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the worker's input has no file name",
        ));
    };
    let mut inherited: Vec<std::os::fd::OwnedFd> = Vec::new();
    let mut command = match sandbox {
        None => {
            let mut command = std::process::Command::new(program);
            command
                .args(args)
                .arg(Path::new(".").join(name))
                .current_dir(dir);
            command
        }
        Some(sandbox) => {
            let mut command = std::process::Command::new(&sandbox.bwrap);
            command.args(bwrap_args(sandbox, limits, input, name, &mut inherited)?);
            command.arg("--");
            if let Some(user) = &sandbox.host_user {
                std::os::unix::fs::chown(input, Some(user.uid), Some(user.gid))?;
                command.arg(&user.setpriv).args([
                    "--reuid",
                    &user.uid.to_string(),
                    "--regid",
                    &user.gid.to_string(),
                    "--clear-groups",
                    "--inh-caps=-all",
                    "--bounding-set=-all",
                    "--no-new-privs",
                    "--",
                ]);
            }
            command.arg(program).args(args);
            command.arg(Path::new(".").join(name));
            command
        }
    };
    let limits = WorkerLimits {
        processes: match sandbox.and_then(|s| s.host_user.as_ref()) {
            Some(_) => limits.processes,
            None => 0,
        },
        ..*limits
    };
    // SAFETY: fcntl and setrlimit are async-signal-safe; nothing else runs between fork and
    // exec. The files `bwrap` copies into the sandbox are passed open (they are close-on-exec
    // in this process, so no other child gets them; bwrap closes them once read); the
    // closure owns them, so they stay open as long as the command.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            for fd in &inherited {
                use std::os::fd::AsRawFd;
                if libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            set_limits(&limits)
        });
    }
    Ok(command)
}

fn bwrap_args(
    sandbox: &Sandbox,
    limits: &WorkerLimits,
    input: &Path,
    name: &OsStr,
    inherited: &mut Vec<std::os::fd::OwnedFd>,
) -> std::io::Result<Vec<OsString>> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&OsStr]| a.extend(items.iter().map(|s| s.to_os_string()));
    let os = OsStr::new;
    match &sandbox.host_user {
        // bwrap keeps root's rights to build the sandbox (no user namespace: in one, only root
        // would be mapped); inside, setpriv needs only these three to become the worker's user
        // and then drops them too.
        Some(_) => push(&[
            os("--unshare-ipc"),
            os("--unshare-pid"),
            os("--unshare-net"),
            os("--unshare-uts"),
            os("--unshare-cgroup-try"),
            os("--cap-drop"),
            os("ALL"),
            os("--cap-add"),
            os("CAP_SETUID"),
            os("--cap-add"),
            os("CAP_SETGID"),
            os("--cap-add"),
            os("CAP_SETPCAP"),
        ]),
        None => push(&[
            os("--unshare-all"),
            os("--unshare-user"),
            os("--uid"),
            os("65534"),
            os("--gid"),
            os("65534"),
            os("--cap-drop"),
            os("ALL"),
        ]),
    }
    push(&[
        os("--die-with-parent"),
        os("--new-session"),
        os("--clearenv"),
        os("--setenv"),
        os("PATH"),
        os("/usr/bin:/bin"),
        os("--setenv"),
        os("HOME"),
        os(SCRATCH),
    ]);
    for var in KEPT_ENV {
        if let Some(value) = std::env::var_os(var) {
            push(&[os("--setenv"), os(var), &value]);
        }
    }
    if sandbox.host_user.is_some() {
        // Before anything is bound in them: see `made` below.
        push(&[os("--perms"), os("0755"), os("--dir"), os("/etc")]);
        push(&[os("--perms"), os("0755"), os("--dir"), os("/etc/ssl")]);
    }
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(path)?;
                push(&[os("--symlink"), target.as_os_str(), os(dir)]);
            }
            Ok(_) => push(&[os("--ro-bind"), os(dir), os(dir)]),
            Err(_) => {}
        }
    }
    for file in ETC_FILES {
        push(&[os("--ro-bind-try"), os(file), os(file)]);
    }
    let size = limits.file_size.max(1 << 20).to_string();
    // The worker's own writable places; with a host user of its own they are made by root,
    // so open to all (no one else is in there).
    let writable = match sandbox.host_user {
        Some(_) => "1777",
        None => "0700",
    };
    push(&[
        os("--proc"),
        os("/proc"),
        os("--dev"),
        os("/dev"),
        os("--size"),
        os(&size),
        os("--perms"),
        os(writable),
        os("--tmpfs"),
        os("/tmp"),
    ]);
    let store_files: Vec<PathBuf> = sandbox
        .store
        .iter()
        .flat_map(|store| {
            ["", "-wal", "-shm"].map(|suffix| {
                let mut path = store.as_os_str().to_os_string();
                path.push(suffix);
                PathBuf::from(path)
            })
        })
        .collect();
    // bwrap makes a bound file's missing parents 0700 (root's, with a host user of its own):
    // they are made first, traversable.
    let mut made: Vec<PathBuf> = ["/tmp", "/etc", "/etc/ssl"].map(PathBuf::from).to_vec();
    for path in &sandbox.read_only {
        match sandbox.host_user {
            None => push(&[os("--ro-bind"), path.as_os_str(), path.as_os_str()]),
            Some(_) => {
                for (file, copy) in readable_files(path, &store_files)? {
                    let mut parents: Vec<&Path> = file
                        .ancestors()
                        .skip(1)
                        .take_while(|p| p.parent().is_some())
                        .collect();
                    parents.reverse();
                    for dir in parents {
                        let system = SYSTEM_DIRS.iter().any(|d| dir.starts_with(d));
                        if !system && !made.iter().any(|m| m == dir) {
                            made.push(dir.to_path_buf());
                            push(&[os("--perms"), os("0755"), os("--dir"), dir.as_os_str()]);
                        }
                    }
                    if copy {
                        let fd = std::fs::File::open(&file)?;
                        let number = {
                            use std::os::fd::AsRawFd;
                            fd.as_raw_fd().to_string()
                        };
                        inherited.push(fd.into());
                        push(&[
                            os("--perms"),
                            os("0444"),
                            os("--ro-bind-data"),
                            os(&number),
                            file.as_os_str(),
                        ]);
                    } else {
                        push(&[os("--ro-bind"), file.as_os_str(), file.as_os_str()]);
                    }
                }
            }
        }
    }
    if let (Some(store), Some(inside)) = (&sandbox.store, sandbox.store_inside()) {
        push(&[
            os("--size"),
            os(&size),
            os("--perms"),
            os(writable),
            os("--tmpfs"),
            os(STORE_DIR),
        ]);
        for suffix in ["", "-wal", "-shm"] {
            let mut from = store.as_os_str().to_os_string();
            from.push(suffix);
            let mut to = inside.as_os_str().to_os_string();
            to.push(suffix);
            push(&[os("--ro-bind-try"), &from, &to]);
        }
    }
    let mut inside = PathBuf::from(SCRATCH);
    inside.push(name);
    push(&[
        os("--size"),
        os(&size),
        os("--perms"),
        os(writable),
        os("--tmpfs"),
        os(SCRATCH),
        os("--ro-bind"),
        input.as_os_str(),
        inside.as_os_str(),
        os("--chdir"),
        os(SCRATCH),
    ]);
    Ok(a)
}

/// What a worker with a host user of its own gets of `path` (a read-only entry): each file,
/// and whether it is copied in (small, non-executable: the worker's user may not be allowed to
/// read the original) or bound (the binary: it must be world-readable and executable, as
/// installed binaries are; a unix socket). The store and its companions are skipped: they have their place.
fn readable_files(path: &Path, skip: &[PathBuf]) -> std::io::Result<Vec<(PathBuf, bool)>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut pending = vec![(path.to_path_buf(), 0)];
    while let Some((path, depth)) = pending.pop() {
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            if depth < 4 {
                for entry in std::fs::read_dir(&path)? {
                    pending.push((entry?.path(), depth + 1));
                }
            }
        } else if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            // A PostgreSQL store's socket: bound (its mode lets any user connect).
            out.push((path, false));
        } else if meta.is_file() && !skip.contains(&path) {
            if meta.permissions().mode() & 0o111 != 0 {
                out.push((path, false));
            } else if meta.len() <= MAX_COPIED_FILE && out.len() < MAX_COPIED_FILES {
                out.push((path, true));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// In the child, between fork and exec.
fn set_limits(limits: &WorkerLimits) -> std::io::Result<()> {
    let set = |resource, soft: u64, hard: u64| {
        if soft == 0 {
            return Ok(());
        }
        let limit = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: a plain system call with a valid pointer.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SIGXCPU at the soft limit, SIGKILL at the hard one.
    set(
        libc::RLIMIT_CPU,
        limits.cpu_seconds,
        limits.cpu_seconds.saturating_add(5),
    )?;
    set(libc::RLIMIT_AS, limits.memory, limits.memory)?;
    set(libc::RLIMIT_FSIZE, limits.file_size, limits.file_size)?;
    set(libc::RLIMIT_NOFILE, limits.open_files, limits.open_files)?;
    set(libc::RLIMIT_NPROC, limits.processes, limits.processes)?;
    Ok(())
}
