//! The analysis worker's sandbox: bubblewrap (`bwrap`) and resource limits.
//!
//! An upload that exploits a decoder runs code in its worker. The worker therefore sees a file
//! system of its own: the system's libraries (`/usr` and its links), the few files of `/etc` the
//! dynamic linker reads, its own binary and the verifier home (read-only), the manifest store
//! (read-only, in [`STORE_DIR`]), its one input (read-only) and a small writable scratch space (`/scratch`, its
//! working directory, and `/tmp`: memory file systems of `file_size` bytes each). Nothing else
//! of the host exists there: no home directory, no signing key, no other upload. It has no
//! network (its own empty network namespace), its own PID, IPC and UTS namespaces, no
//! capabilities, a clean environment, runs as uid/gid 65534 in its own user namespace, and dies
//! with the server. The process limits (CPU time, address space, file size, open files) are
//! set before `bwrap` starts, and hold for everything it runs.

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
}

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
}

impl Default for WorkerLimits {
    fn default() -> WorkerLimits {
        WorkerLimits {
            cpu_seconds: 600,
            memory: 4 << 30,
            file_size: 64 << 20,
            open_files: 256,
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
        let sandbox = Sandbox {
            bwrap,
            read_only,
            store,
        };
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
/// sets stdin/stdout/stderr.
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
            command.args(bwrap_args(sandbox, limits, input, name)?);
            command.arg("--").arg(program).args(args);
            command.arg(Path::new(".").join(name));
            command
        }
    };
    let limits = *limits;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || set_limits(&limits));
    }
    Ok(command)
}

fn bwrap_args(
    sandbox: &Sandbox,
    limits: &WorkerLimits,
    input: &Path,
    name: &OsStr,
) -> std::io::Result<Vec<OsString>> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&OsStr]| a.extend(items.iter().map(|s| s.to_os_string()));
    let os = OsStr::new;
    push(&[
        os("--unshare-all"),
        os("--unshare-user"),
        os("--uid"),
        os("65534"),
        os("--gid"),
        os("65534"),
        os("--die-with-parent"),
        os("--new-session"),
        os("--cap-drop"),
        os("ALL"),
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
    push(&[
        os("--proc"),
        os("/proc"),
        os("--dev"),
        os("/dev"),
        os("--size"),
        os(&size),
        os("--tmpfs"),
        os("/tmp"),
    ]);
    for path in &sandbox.read_only {
        push(&[os("--ro-bind"), path.as_os_str(), path.as_os_str()]);
    }
    if let (Some(store), Some(inside)) = (&sandbox.store, sandbox.store_inside()) {
        push(&[os("--size"), os(&size), os("--tmpfs"), os(STORE_DIR)]);
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
        os("0700"),
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
    Ok(())
}
