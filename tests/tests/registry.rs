//! The service registry (`multifrost::registry`) over real processes: the `registry_tool`
//! binary (the Rust API in another process) and the Python test peer, which implements the
//! Python implementation's locking. Every test has its own `HOME` folder; child processes get
//! it through their environment, and this process uses `Registry::at` on the same folder.
//!
//! No sleep is used to order events: the processes print what they did (`LOCKED`, `RELEASED`,
//! `PORT ...`) and the tests read those lines. A few waits are observation windows ("nothing
//! happens while the lock is held"), never synchronisation.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use multifrost::registry::{Registry, ServiceEntry};
use multifrost::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Generous bound for anything a process is expected to print.
const WAIT: Duration = Duration::from_secs(60);
/// How long "nothing happens while the lock is held" is observed.
const OBSERVE: Duration = Duration::from_millis(1500);

/// A temporary HOME, removed on drop.
struct Home {
    path: PathBuf,
}

impl Home {
    fn new(tag: &str) -> Home {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "multifrost-registry-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Home { path }
    }

    /// The registry this HOME's processes use.
    fn registry(&self) -> Registry {
        Registry::at(self.path.join(".multifrost"))
    }

    fn file(&self) -> PathBuf {
        self.registry().path()
    }

    fn lock(&self) -> PathBuf {
        self.registry().lock_path()
    }

    /// Writes services.json (creating the folder).
    fn write_file(&self, text: &str) {
        std::fs::create_dir_all(self.registry().dir()).unwrap();
        std::fs::write(self.file(), text).unwrap();
    }

    fn read_file(&self) -> String {
        std::fs::read_to_string(self.file()).unwrap()
    }

    /// `registry_tool` with this HOME.
    fn tool(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_registry_tool"));
        cmd.env("HOME", &self.path).kill_on_drop(true);
        cmd
    }

    /// The Python peer with this HOME.
    fn python(&self) -> Command {
        let mut cmd = Command::new(support::python());
        cmd.arg(support::peer_script())
            .env("HOME", &self.path)
            .kill_on_drop(true);
        cmd
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running process whose stdout is read line by line and whose stdin stays open.
struct Proc {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    what: String,
}

impl Proc {
    fn spawn(mut cmd: Command, args: &[&str]) -> Proc {
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawning a test process");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Proc {
            child,
            lines,
            what: args.join(" "),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// The next line of stdout (fails the test at end of file or after a minute).
    async fn line(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!("'{}' ended without printing the expected line", self.what),
            Ok(Err(err)) => panic!("reading the output of '{}': {err}", self.what),
            Err(_) => panic!("'{}' printed nothing within {WAIT:?}", self.what),
        }
    }

    /// Sends a line on stdin (the tools take it as "let go now").
    async fn poke(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin is open");
        stdin.write_all(b"go\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Closes stdin and waits for the exit status.
    async fn finish(mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("'{}' did not exit", self.what))
            .unwrap()
    }
}

/// Runs a command to completion: (success, stdout, stderr).
async fn run(mut cmd: Command, args: &[&str]) -> (bool, String, String) {
    cmd.args(args).stdin(Stdio::null());
    let output = tokio::time::timeout(WAIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} did not finish within {WAIT:?}"))
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    )
}

/// The port in a tool's "PORT <port>..." line.
fn port_of(line: &str) -> u16 {
    line.strip_prefix("PORT ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("expected 'PORT <port>', got {line:?}"))
}

/// The message of a registry error.
fn registry_message(err: Error) -> String {
    let text = err.to_string();
    match text.strip_prefix("service registry: ") {
        Some(message) => message.to_owned(),
        None => panic!("expected a registry error, got {err:?}"),
    }
}

/// The pid of a process that has exited (and been reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!support::process_alive(pid));
    pid
}

fn me() -> u32 {
    std::process::id()
}

fn already_running(id: &str, pid: u32, port: u16) -> String {
    format!("Service '{id}' already running (PID: {pid}, port: {port})")
}

/// Takes and at once drops an exclusive flock on `file`; false if another holds one.
fn try_flock(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this test owns.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if taken {
        // SAFETY: as above.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    }
    taken
}

fn set_mtime(path: &Path, time: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[tokio::test]
async fn register_discover_unregister_across_processes() {
    let home = Home::new("cycle");
    let registry = home.registry();
    let pid = me().to_string();

    let (ok, out, _) = run(home.tool(), &["register", "math", "--pid", &pid]).await;
    assert!(ok, "{out}");
    let port = port_of(&out);

    let entry = registry.lookup("math").await.unwrap().expect("registered");
    assert_eq!((entry.port, entry.pid), (port, me()));
    assert!(entry.started.is_some());
    let (ok, out, _) = run(home.tool(), &["discover", "math", "5"]).await;
    assert!(ok, "{out}");
    assert_eq!(out, format!("PORT {port} PID {pid}"));
    assert_eq!(
        registry.list().await.unwrap(),
        vec![("math".to_owned(), entry.clone(), true)]
    );

    // Owner-only permissions; no lock file left behind.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(registry.dir()), 0o700);
    assert_eq!(mode(&home.file()), 0o600);
    assert!(!home.lock().exists());

    // Only the owner's pid unregisters.
    let other = (me() + 1).to_string();
    let (ok, out, _) = run(home.tool(), &["unregister", "math", "--pid", &other]).await;
    assert!(ok && out == "REMOVED false", "{out}");
    assert!(registry.lookup("math").await.unwrap().is_some());
    let (ok, out, _) = run(home.tool(), &["unregister", "math", "--pid", &pid]).await;
    assert!(ok && out == "REMOVED true", "{out}");
    assert_eq!(registry.lookup("math").await.unwrap(), None);
    assert!(registry.list().await.unwrap().is_empty());
    assert!(!home.lock().exists());
}

#[tokio::test]
async fn a_second_registration_of_a_live_id_fails_and_changes_nothing() {
    let home = Home::new("second");
    let registry = home.registry();
    let port = registry.register("math", me()).await.unwrap();
    let before = std::fs::read(home.file()).unwrap();

    let (ok, out, _) = run(home.tool(), &["register", "math"]).await;
    assert!(!ok);
    assert_eq!(
        out,
        format!("ERROR {}", already_running("math", me(), port))
    );
    let (ok, out, _) = run(home.tool(), &["register", "math", "--port", "4321"]).await;
    assert!(!ok);
    assert_eq!(
        out,
        format!("ERROR {}", already_running("math", me(), port))
    );
    let err = registry.register("math", dead_pid()).await.unwrap_err();
    assert_eq!(registry_message(err), already_running("math", me(), port));

    assert_eq!(std::fs::read(home.file()).unwrap(), before);
    assert!(!home.lock().exists());
}

#[tokio::test]
async fn a_dead_owners_entry_is_taken_over() {
    let home = Home::new("takeover");
    let dead = dead_pid();
    home.write_file(&format!(
        r#"{{"math": {{"port": 1234, "pid": {dead}, "started": "2026-03-13T01:48:08.123456"}}}}"#
    ));
    let registry = home.registry();
    assert_eq!(
        registry.lookup("math").await.unwrap(),
        None,
        "a dead owner is not live"
    );
    let listed = registry.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].1.pid, listed[0].2), (dead, false));

    let pid = me().to_string();
    let (ok, out, _) = run(home.tool(), &["register", "math", "--pid", &pid]).await;
    assert!(ok, "{out}");
    let entry = registry.lookup("math").await.unwrap().expect("taken over");
    assert_eq!((entry.port, entry.pid), (port_of(&out), me()));
    assert!(!home.read_file().contains(&dead.to_string()));
}

#[tokio::test]
async fn unknown_fields_and_other_languages_entries_survive_rewrites() {
    let home = Home::new("verbatim");
    let me = me();
    let go = format!(
        "{{\n    \"port\": 7001,\n    \"pid\": {me},\n    \"start_time\": \"2026-03-13T01:48:08.5+01:00\"\n  }}"
    );
    let node = format!(
        r#"{{"port": 7002, "pid": {me}, "started": "2026-03-13T00:48:08.123Z", "host": "127.0.0.1", "meta": {{"tags": ["a", "b"], "weight": 1.50, "big": 123456789012345678901234567890}}}}"#
    );
    let old_rust = format!(r#"{{"port": 7003, "pid": {me}, "started": "1763800000"}}"#);
    let numeric = format!(r#"{{"port": 7004, "pid": {me}, "started": 1763800000.25}}"#);
    let not_an_object = "[1, 2, {\"x\": null}]";
    let no_port = format!(r#"{{"pid": {me}, "note": "no port"}}"#);
    let text = format!(
        "{{\n  \"go-svc\": {go},\n  \"node-svc\": {node},\n  \"old-rust\": {old_rust},\n  \
         \"numeric\": {numeric},\n  \"weird\": {not_an_object},\n  \"no-port\": {no_port},\n  \
         \"gone\": {{\"port\": 7005, \"pid\": {me}}}\n}}"
    );
    home.write_file(&text);
    let registry = home.registry();

    // Read leniently.
    let lookup = |id: &'static str| {
        let registry = registry.clone();
        async move { registry.lookup(id).await.unwrap() }
    };
    assert_eq!(
        lookup("go-svc").await,
        Some(ServiceEntry {
            port: 7001,
            pid: me,
            started: Some("2026-03-13T01:48:08.5+01:00".into())
        })
    );
    assert_eq!(
        lookup("node-svc").await.unwrap().started.as_deref(),
        Some("2026-03-13T00:48:08.123Z")
    );
    assert_eq!(
        lookup("old-rust").await.unwrap().started.as_deref(),
        Some("1763800000")
    );
    assert_eq!(
        lookup("numeric").await.unwrap().started.as_deref(),
        Some("1763800000.25")
    );
    assert_eq!(lookup("weird").await, None);
    assert_eq!(lookup("no-port").await, None);
    let listed: Vec<String> = registry
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        listed,
        ["go-svc", "node-svc", "old-rust", "numeric", "gone"]
    );

    // Rewrites by another process: a registration and an unregistration.
    let pid = me.to_string();
    let (ok, out, _) = run(home.tool(), &["register", "new-svc", "--pid", &pid]).await;
    assert!(ok, "{out}");
    let (ok, out, _) = run(home.tool(), &["unregister", "gone", "--pid", &pid]).await;
    assert!(ok && out == "REMOVED true", "{out}");

    let after = home.read_file();
    for (id, value) in [
        ("go-svc", go.as_str()),
        ("node-svc", node.as_str()),
        ("old-rust", old_rust.as_str()),
        ("numeric", numeric.as_str()),
        ("weird", not_an_object),
        ("no-port", no_port.as_str()),
    ] {
        assert!(
            after.contains(&format!("\"{id}\": {value}")),
            "entry {id} was not kept verbatim:\n{after}"
        );
    }
    assert!(!after.contains("\"gone\""), "{after}");
    assert!(after.contains("\"new-svc\""), "{after}");
    // Still in file order, the new entry last.
    let positions: Vec<usize> = [
        "go-svc", "node-svc", "old-rust", "numeric", "weird", "no-port", "new-svc",
    ]
    .iter()
    .map(|id| after.find(&format!("\"{id}\"")).unwrap())
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{after}");

    // Python reads what we wrote, and rewrites it.
    let (ok, out, err) = run(home.python(), &["register", "py-svc", "--pid", &pid]).await;
    assert!(ok, "python register: {out} {err}");
    assert_eq!(
        registry.lookup("py-svc").await.unwrap().map(|e| e.port),
        Some(out.parse().unwrap())
    );
    assert_eq!(lookup("go-svc").await.unwrap().port, 7001);
    assert!(lookup("new-svc").await.is_some());
}

#[tokio::test]
async fn a_corrupt_file_is_reported_and_left_as_it_was() {
    let home = Home::new("corrupt");
    let registry = home.registry();
    let file = home.file();
    let truncated = format!(
        "{{\n  \"other\": {{\n    \"port\": 5555,\n    \"pid\": {}",
        me()
    );
    home.write_file(&truncated);

    let err = registry_message(registry.register("math", me()).await.unwrap_err());
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("EOF"), "the parse error is given: {err}");
    let err = registry_message(registry.unregister("other", me()).await.unwrap_err());
    assert!(err.contains(&file.display().to_string()), "{err}");
    let err = registry_message(
        registry
            .discover("other", Duration::from_secs(5))
            .await
            .unwrap_err(),
    );
    assert!(err.contains(&file.display().to_string()), "{err}");

    for args in [
        &["register", "math"][..],
        &["unregister", "other"][..],
        &["discover", "other", "5"][..],
    ] {
        let (ok, out, _) = run(home.tool(), args).await;
        assert!(!ok, "{args:?}: {out}");
        assert!(
            out.starts_with("ERROR ") && out.contains(&file.display().to_string()),
            "{out}"
        );
    }

    // Not even an empty file is taken for an empty registry.
    assert_eq!(home.read_file(), truncated);
    std::fs::write(&file, "").unwrap();
    assert!(registry.register("math", me()).await.is_err());
    assert_eq!(home.read_file(), "");
    assert!(!home.lock().exists());
}

#[tokio::test]
async fn sixteen_processes_register_sixteen_ids_at_once() {
    let home = Home::new("sixteen");
    let pid = me().to_string();
    let runs: Vec<_> = (0..16)
        .map(|i| {
            let id = format!("svc-{i}");
            let cmd = home.tool();
            let pid = pid.clone();
            tokio::spawn(async move { run(cmd, &["register", &id, "--pid", &pid]).await })
        })
        .collect();
    let mut ports = Vec::new();
    for run in runs {
        let (ok, out, err) = run.await.unwrap();
        assert!(ok, "{out} {err}");
        ports.push(port_of(&out));
    }
    let listed = home.registry().list().await.unwrap();
    assert_eq!(listed.len(), 16, "{}", home.read_file());
    for (i, port) in ports.iter().enumerate() {
        let id = format!("svc-{i}");
        let (_, entry, alive) = listed
            .iter()
            .find(|e| e.0 == id)
            .expect("every id is in the file");
        assert!(*alive && entry.pid == me());
        assert_eq!(entry.port, *port);
    }
    let mut distinct = ports.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 16, "ports are distinct: {ports:?}");
    assert!(!home.lock().exists());
}

#[tokio::test]
async fn sixteen_processes_racing_for_one_id_one_wins() {
    let home = Home::new("race");
    // Each racer registers with its own pid and stays alive after a success.
    let mut racers: Vec<Proc> = (0..16)
        .map(|_| Proc::spawn(home.tool(), &["register", "race", "--stay"]))
        .collect();
    let mut outcomes = Vec::new();
    for racer in &mut racers {
        outcomes.push((racer.pid(), racer.line().await));
    }
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, line)| line.starts_with("PORT "))
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:#?}");
    let (winner, line) = winners[0];
    let port = port_of(line);
    let expected = format!("ERROR {}", already_running("race", *winner, port));
    for (pid, line) in &outcomes {
        if pid != winner {
            assert_eq!(line, &expected);
        }
    }
    let entry = home.registry().lookup("race").await.unwrap().unwrap();
    assert_eq!((entry.pid, entry.port), (*winner, port));
    for racer in racers {
        let won = racer.pid() == *winner;
        assert_eq!(racer.finish().await.success(), won);
    }
    // The winner is gone: its entry is dead, and taken over by the next registration.
    assert_eq!(home.registry().lookup("race").await.unwrap(), None);
    home.registry().register("race", me()).await.unwrap();
}

#[tokio::test]
async fn a_lock_left_by_a_killed_process_is_recovered() {
    let home = Home::new("crash");
    let mut holder = Proc::spawn(home.tool(), &["hold-lock"]);
    assert_eq!(holder.line().await, "LOCKED");
    let holder_pid = holder.pid();
    assert_eq!(
        std::fs::read_to_string(home.lock()).unwrap(),
        holder_pid.to_string()
    );
    holder.child.kill().await.unwrap(); // SIGKILL, and reaped
    assert!(home.lock().exists(), "a killed holder leaves its lock file");

    let port = home.registry().register("after-crash", me()).await.unwrap();
    assert_eq!(
        home.registry()
            .lookup("after-crash")
            .await
            .unwrap()
            .unwrap()
            .port,
        port
    );
    assert!(!home.lock().exists());
    // Python, which never removes a stale lock, works again too.
    let (ok, out, err) = run(
        home.python(),
        &["register", "py", "--pid", &me().to_string()],
    )
    .await;
    assert!(ok, "{out} {err}");
}

#[tokio::test]
async fn a_python_lock_left_by_a_killed_process_is_recovered() {
    let home = Home::new("pycrash");
    let mut holder = Proc::spawn(home.python(), &["hold-lock", "600"]);
    assert_eq!(holder.line().await, "LOCKED");
    assert_eq!(
        std::fs::read_to_string(home.lock()).unwrap(),
        holder.pid().to_string()
    );
    holder.child.kill().await.unwrap();
    assert!(home.lock().exists());
    let pid = me().to_string();
    let (ok, out, _) = run(home.tool(), &["register", "svc", "--pid", &pid]).await;
    assert!(ok, "{out}");
    assert!(!home.lock().exists());
}

#[tokio::test]
async fn an_old_empty_lock_file_is_recovered() {
    let home = Home::new("oldlock");
    std::fs::create_dir_all(home.registry().dir()).unwrap();
    std::fs::write(home.lock(), "").unwrap();
    set_mtime(&home.lock(), SystemTime::now() - Duration::from_secs(60));
    let pid = me().to_string();
    let (ok, out, _) = run(home.tool(), &["register", "svc", "--pid", &pid]).await;
    assert!(ok, "{out}");
    assert!(!home.lock().exists());
}

#[tokio::test]
async fn a_young_empty_lock_file_is_respected() {
    // Python's lock file between its creation and the pid being written: never stale, never
    // touched.
    let home = Home::new("younglock");
    std::fs::create_dir_all(home.registry().dir()).unwrap();
    std::fs::write(home.lock(), "").unwrap();
    let registry = home.registry();
    let task = tokio::spawn(async move { registry.register("svc", me()).await });
    // Throughout the window, nobody else flocks the file (as Python would find it if it had
    // just created it: another process's flock there wedges Python).
    let probe = std::fs::File::open(home.lock()).unwrap();
    let until = std::time::Instant::now() + OBSERVE;
    while std::time::Instant::now() < until {
        assert!(
            try_flock(&probe),
            "another process flocked a lock file it did not create"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        !task.is_finished(),
        "registered past another process's fresh lock"
    );
    assert_eq!(
        std::fs::read(home.lock()).unwrap(),
        b"",
        "the lock file was written to"
    );
    // Its "holder" releases it.
    std::fs::remove_file(home.lock()).unwrap();
    let port = tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        home.registry().lookup("svc").await.unwrap().unwrap().port,
        port
    );
}

#[tokio::test]
async fn waiting_for_a_lock_held_too_long_fails_naming_the_file_and_holder() {
    let home = Home::new("locktimeout");
    std::fs::create_dir_all(home.registry().dir()).unwrap();
    // A live holder, and a modification time that will not get old during the test.
    std::fs::write(home.lock(), me().to_string()).unwrap();
    set_mtime(&home.lock(), SystemTime::now() + Duration::from_secs(3600));
    let err = registry_message(home.registry().register("svc", me()).await.unwrap_err());
    assert!(err.contains(&home.lock().display().to_string()), "{err}");
    assert!(err.contains(&format!("PID {}", me())), "{err}");
    assert!(home.lock().exists(), "a live holder's lock is not removed");
    assert!(!home.file().exists());
}

#[tokio::test]
async fn a_python_held_lock_blocks_a_rust_registration_until_released() {
    let home = Home::new("pylock");
    let mut python = Proc::spawn(home.python(), &["hold-lock", "2"]);
    assert_eq!(python.line().await, "LOCKED");
    let python_pid = python.pid().to_string();

    let registry = home.registry();
    let mut task = tokio::spawn(async move { registry.register("svc", me()).await });
    // Until Python says RELEASED: the registration must stay pending while the lock file is
    // still Python's (checked in that order, so a pending registration is seen with the lock
    // still held after it).
    let mut pending_while_held = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    let released = loop {
        tokio::select! {
            biased;
            line = python.line() => break line,
            _ = ticker.tick() => {
                assert!(!task.is_finished() || !home.lock().exists(), "registered while Python held the lock");
                let pending = !task.is_finished();
                let held = std::fs::read_to_string(home.lock()).is_ok_and(|c| c == python_pid);
                if pending && held {
                    pending_while_held += 1;
                }
            }
        }
    };
    assert_eq!(released, "RELEASED");
    assert!(
        pending_while_held > 0,
        "the registration was never seen waiting for Python's lock"
    );
    assert!(
        !task.is_finished(),
        "the registration completed before Python printed RELEASED"
    );
    let port = tokio::time::timeout(WAIT, &mut task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        home.registry().lookup("svc").await.unwrap().unwrap().port,
        port
    );
    assert!(python.finish().await.success());
    assert!(!home.lock().exists());
}

#[tokio::test]
async fn a_rust_held_lock_blocks_a_python_registration_until_released() {
    let home = Home::new("rustlock");
    let pid = me().to_string();
    let mut holder = Proc::spawn(home.tool(), &["hold-lock"]);
    assert_eq!(holder.line().await, "LOCKED");

    let mut python = Proc::spawn(home.python(), &["register", "py-svc", "--pid", &pid]);
    tokio::time::sleep(OBSERVE).await;
    assert!(
        python.child.try_wait().unwrap().is_none(),
        "Python registered while Rust held the lock"
    );
    assert!(!home.file().exists());

    holder.poke().await;
    assert_eq!(holder.line().await, "RELEASED");
    let port: u16 = python.line().await.parse().expect("python prints the port");
    assert!(python.finish().await.success());
    assert!(holder.finish().await.success());
    assert_eq!(
        home.registry()
            .lookup("py-svc")
            .await
            .unwrap()
            .unwrap()
            .port,
        port
    );

    // Python's locking is not wedged: the next Python registration goes through too.
    let (ok, out, err) = run(home.python(), &["register", "py-svc-2", "--pid", &pid]).await;
    assert!(ok, "{out} {err}");
    assert!(home.registry().lookup("py-svc-2").await.unwrap().is_some());
    assert!(!home.lock().exists());
}

#[tokio::test]
async fn python_and_rust_registering_at_once_all_end_up_in_the_file() {
    // Both lockings contending: Rust never touches Python's fresh lock files, so no Python
    // process is wedged and nobody loses an entry.
    let home = Home::new("mixed");
    let pid = me().to_string();
    let runs: Vec<_> = (0..16)
        .map(|i| {
            let (cmd, id) = if i % 2 == 0 {
                (home.tool(), format!("rust-{i}"))
            } else {
                (home.python(), format!("python-{i}"))
            };
            let pid = pid.clone();
            tokio::spawn(async move { run(cmd, &["register", &id, "--pid", &pid]).await })
        })
        .collect();
    for run in runs {
        let (ok, out, err) = run.await.unwrap();
        assert!(ok, "{out} {err}");
    }
    let listed = home.registry().list().await.unwrap();
    assert_eq!(listed.len(), 16, "{}", home.read_file());
    assert!(!home.lock().exists());
}

#[tokio::test]
async fn python_registered_ids_are_found_by_rust_and_the_reverse() {
    let home = Home::new("interop");
    let pid = me().to_string();
    let (ok, out, err) = run(home.python(), &["register", "py-svc", "--pid", &pid]).await;
    assert!(ok, "{out} {err}");
    let entry = home
        .registry()
        .discover("py-svc", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((entry.port, entry.pid), (out.parse().unwrap(), me()));
    assert!(entry.started.is_some());

    let port = home.registry().register("rust-svc", me()).await.unwrap();
    let (ok, out, err) = run(home.python(), &["discover", "rust-svc", "5"]).await;
    assert!(ok, "{out} {err}");
    assert_eq!(out, port.to_string());

    // Python unregisters its entry in a file Rust wrote, and the other stays.
    let (ok, out, err) = run(home.python(), &["unregister", "py-svc", "--pid", &pid]).await;
    assert!(ok, "{out} {err}");
    assert_eq!(home.registry().lookup("py-svc").await.unwrap(), None);
    assert_eq!(
        home.registry()
            .lookup("rust-svc")
            .await
            .unwrap()
            .unwrap()
            .port,
        port
    );
}

#[tokio::test]
async fn discovering_a_missing_id_times_out_with_the_message() {
    let home = Home::new("missing");
    let err = home
        .registry()
        .discover("nobody", Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(
        registry_message(err),
        "Service 'nobody' not found within 0.5s"
    );
    let (ok, out, _) = run(home.tool(), &["discover", "nobody", "1"]).await;
    assert!(!ok);
    assert_eq!(out, "ERROR Service 'nobody' not found within 1.0s");
    // Python words it the same way.
    let (ok, _, err) = run(home.python(), &["discover", "nobody", "1"]).await;
    assert!(!ok);
    assert_eq!(err, "Service 'nobody' not found within 1.0s");
}

// ---- Odd files and unsafe permissions (issue 9, sections 7 and 8) ----

/// How long a registry operation may take on an odd file before the test calls it a hang.
const NO_HANG: Duration = Duration::from_secs(8);

/// Runs `registry_tool <args>` to completion within `bound`: (success, stdout, time taken).
/// Fails the test, naming the operation, when it does not finish in time (the tool is killed).
async fn tool_within(home: &Home, args: &[&str], bound: Duration) -> (bool, String, Duration) {
    let mut cmd = home.tool();
    cmd.args(args).stdin(Stdio::null());
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(bound, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("registry_tool {args:?} hung (still running after {bound:?})"))
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        started.elapsed(),
    )
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn a_fifo_in_place_of_the_file_is_refused_by_every_operation_without_hanging() {
    let home = Home::new("fifofile");
    std::fs::create_dir_all(home.registry().dir()).unwrap();
    mkfifo(&home.file());
    let path = home.file().display().to_string();
    for args in [
        &["lookup", "svc"][..],
        &["list"],
        &["discover", "svc", "1.5"],
        &["register", "svc"],
        &["unregister", "svc"],
    ] {
        let (ok, out, took) = tool_within(&home, args, NO_HANG).await;
        assert!(!ok, "{args:?} succeeded on a FIFO: {out}");
        assert!(
            out.contains(&path) && out.contains("a FIFO, not a regular file"),
            "{args:?}: {out}"
        );
        // discover is given 1.5 s: it must not wait on the FIFO past that (in another process,
        // since a thread stuck opening a FIFO keeps its process from exiting).
        assert!(
            took < Duration::from_millis(1500 + 2000),
            "{args:?} took {took:?}"
        );
        eprintln!("{args:?} refused the FIFO in {took:?}");
    }
    assert!(!home.lock().exists(), "the lock was left behind");
}

#[tokio::test]
async fn a_fifo_in_place_of_the_lock_is_refused_by_register() {
    let home = Home::new("fifolock");
    std::fs::create_dir_all(home.registry().dir()).unwrap();
    mkfifo(&home.lock());
    let (ok, out, took) = tool_within(&home, &["register", "svc"], NO_HANG).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&home.lock().display().to_string()) && out.contains("a FIFO"),
        "{out}"
    );
    eprintln!("register refused a FIFO lock in {took:?}");
    assert!(!home.file().exists());
}

#[tokio::test]
async fn a_process_holding_flock_on_the_folder_does_not_stall_register() {
    let home = Home::new("dirflock");
    std::fs::create_dir_all(home.registry().dir()).unwrap();
    // Another process flocks the folder itself and keeps it until its stdin closes.
    let mut holder = Command::new(support::python());
    holder
        .args([
            "-c",
            "import fcntl, os, sys\n\
             fd = os.open(sys.argv[1], os.O_RDONLY)\n\
             fcntl.flock(fd, fcntl.LOCK_EX)\n\
             print('LOCKED', flush=True)\n\
             sys.stdin.readline()\n",
        ])
        .arg(home.registry().dir())
        .kill_on_drop(true);
    let mut holder = Proc::spawn(holder, &[]);
    assert_eq!(holder.line().await, "LOCKED");
    // Python's register waits 10 s for the lock: ours must finish well within that.
    let (ok, out, took) = tool_within(&home, &["register", "svc"], NO_HANG).await;
    assert!(ok, "{out}");
    let port = port_of(&out);
    eprintln!("register with the folder flocked by another process took {took:?}");
    let (ok, out, took) = tool_within(&home, &["unregister", "svc", "--pid", "1"], NO_HANG).await;
    assert!(ok && out == "REMOVED false", "{out}");
    eprintln!("unregister with the folder flocked took {took:?}");
    assert!(!home.lock().exists(), "the lock was left behind");
    assert!(holder.finish().await.success());
    assert_ne!(port, 0);
}

#[tokio::test]
async fn a_registry_folder_writable_by_others_is_refused() {
    for (mode, who) in [(0o777, "everyone"), (0o770, "its group")] {
        let home = Home::new("dirmode");
        let dir = home.registry().dir().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        chmod(&dir, mode);
        let fix = format!("chmod 700 {}", dir.display());
        for args in [&["lookup", "svc"][..], &["list"], &["register", "svc"]] {
            let (ok, out, _) = tool_within(&home, args, NO_HANG).await;
            assert!(!ok, "{args:?} used a folder of mode {mode:o}: {out}");
            assert!(
                out.contains(&format!("writable by {who}")) && out.contains(&fix),
                "{args:?}: {out}"
            );
        }
        assert!(!home.file().exists() && !home.lock().exists());
        // The fix the message gives works.
        chmod(&dir, 0o700);
        let (ok, out, _) = tool_within(&home, &["register", "svc"], NO_HANG).await;
        assert!(ok, "{out}");
    }
}

#[tokio::test]
async fn a_services_file_writable_by_others_is_refused_and_python_modes_are_accepted() {
    let home = Home::new("filemode");
    home.write_file(&format!(
        r#"{{"svc": {{"port": 5555, "pid": {}, "started": "x"}}}}"#,
        me()
    ));
    // The mode Python writes: readable by all, writable by the owner only.
    chmod(&home.file(), 0o644);
    chmod(home.registry().dir(), 0o755);
    let (ok, out, _) = tool_within(&home, &["lookup", "svc"], NO_HANG).await;
    assert!(ok && out.starts_with("PORT 5555"), "{out}");
    chmod(&home.file(), 0o666);
    let (ok, out, _) = tool_within(&home, &["lookup", "svc"], NO_HANG).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&home.file().display().to_string())
            && out.contains("writable by everyone")
            && out.contains("chmod 600"),
        "{out}"
    );
    let before = home.read_file();
    let (ok, _, _) = tool_within(&home, &["register", "other"], NO_HANG).await;
    assert!(!ok);
    assert_eq!(home.read_file(), before, "an unsafe file was rewritten");
}

#[tokio::test]
async fn a_registry_owned_by_another_user_is_refused() {
    // Only root can give a folder to another user; as any other user, the folder of another
    // user cannot be made here, and the mode tests above cover what can.
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot create a folder owned by another user; not checked");
        return;
    }
    let home = Home::new("owner");
    let dir = home.registry().dir().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let (ok, out, _) = tool_within(&home, &["lookup", "svc"], NO_HANG).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&dir.display().to_string()) && out.contains("owned by uid 65534"),
        "{out}"
    );
    // A file planted by another user in an otherwise private folder is refused too.
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    home.write_file("{}");
    std::os::unix::fs::chown(home.file(), Some(65534), Some(65534)).unwrap();
    let (ok, out, _) = tool_within(&home, &["register", "svc"], NO_HANG).await;
    assert!(!ok && out.contains("owned by uid 65534"), "{out}");
}
