//! Starting the child process and watching it: its pipes, its exit, and its death with ours.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::config::SpawnSpec;
use super::output::{OutputEvent, OutputHandler, OutputStream};
use crate::error::{Error, ExitStatus};
use crate::protocol::contract::{PORT_ENV, WORKER_MODE_ENV};

/// Starts the child with `COMLINK_ZMQ_PORT=<port>`, its stdout and stderr piped to us.
pub(crate) fn spawn_child(spec: &SpawnSpec, port: u16, worker: &str) -> Result<Child, Error> {
    let (program, args) = spec.command_line();
    let mut command = Command::new(&program);
    command
        .args(&args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(PORT_ENV, port.to_string())
        .env(WORKER_MODE_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a kill reaches what a launcher (a shell script, `npx`)
        // started too.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.current_dir {
        command.current_dir(dir);
    }
    let parent_pid = std::process::id() as libc::pid_t;
    // SAFETY: between fork and exec only async-signal-safe calls: prctl, getppid, _exit.
    unsafe {
        command.pre_exec(move || {
            // The child dies with the thread that spawned it; see `Handle::start` for why that
            // thread lives as long as the runtime.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // We may have died before prctl took effect.
            if libc::getppid() != parent_pid {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command.spawn().map_err(|err| {
        let command_line: Vec<_> = std::iter::once(&program)
            .chain(&args)
            .map(|part| part.to_string_lossy())
            .collect();
        Error::StartFailed {
            worker: worker.to_owned(),
            reason: format!("cannot run {}: {err}", command_line.join(" ")),
        }
    })
}

/// How many of the child's last stderr lines are kept, to explain a failed start.
const RECENT_STDERR_LINES: usize = 8;

/// The tasks reading a child's stdout and stderr pipes, and its last stderr lines.
pub(crate) struct PipeReaders {
    tasks: Vec<JoinHandle<()>>,
    recent_stderr: Arc<Mutex<VecDeque<String>>>,
}

impl PipeReaders {
    /// Waits (at most `within`) until both pipes reached their end: every line the child wrote
    /// there has been handed to the output handler.
    pub async fn finished(&mut self, within: Duration) {
        let tasks = std::mem::take(&mut self.tasks);
        let _ = tokio::time::timeout(within, futures_util::future::join_all(tasks)).await;
    }

    /// The child's last lines on stderr, oldest first.
    pub fn recent_stderr(&self) -> Vec<String> {
        self.recent_stderr
            .lock()
            .expect("stderr lock")
            .iter()
            .cloned()
            .collect()
    }
}

/// Reads the child's pipes line by line so they never fill up and block the child.
pub(crate) fn forward_pipes(
    child: &mut Child,
    worker: &str,
    output: &OutputHandler,
) -> PipeReaders {
    let recent_stderr = Arc::new(Mutex::new(VecDeque::new()));
    let mut tasks = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        tasks.push(tokio::spawn(forward(
            stdout,
            worker.to_owned(),
            OutputStream::Stdout,
            output.clone(),
            None,
        )));
    }
    if let Some(stderr) = child.stderr.take() {
        tasks.push(tokio::spawn(forward(
            stderr,
            worker.to_owned(),
            OutputStream::Stderr,
            output.clone(),
            Some(recent_stderr.clone()),
        )));
    }
    PipeReaders {
        tasks,
        recent_stderr,
    }
}

async fn forward(
    pipe: impl AsyncRead + Unpin,
    worker: String,
    stream: OutputStream,
    output: OutputHandler,
    recent: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let mut lines = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                let text = String::from_utf8_lossy(&line);
                if let Some(recent) = &recent {
                    let mut recent = recent.lock().expect("stderr lock");
                    if recent.len() == RECENT_STDERR_LINES {
                        recent.pop_front();
                    }
                    recent.push_back(text.clone().into_owned());
                }
                output.emit(OutputEvent {
                    worker: &worker,
                    stream,
                    text: &text,
                    from_message: false,
                });
            }
        }
    }
}

/// Owns the child process: reports its exit, and kills it on request or when dropped.
pub(crate) struct ProcessWatch {
    pub pid: Option<u32>,
    pub pipes: PipeReaders,
    pub kill: Option<oneshot::Sender<()>>,
    pub exited: tokio::sync::watch::Receiver<Option<ExitStatus>>,
}

impl ProcessWatch {
    /// Watches `child` on a task; `on_exit` runs once with its status.
    pub fn start(
        mut child: Child,
        pipes: PipeReaders,
        on_exit: impl FnOnce(ExitStatus) + Send + 'static,
    ) -> ProcessWatch {
        let (kill, kill_requested) = oneshot::channel::<()>();
        let (exit_sender, exited) = tokio::sync::watch::channel(None);
        let pid = child.id();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_requested => {
                    if let Some(pid) = pid {
                        kill_group(pid);
                    }
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let status = match status {
                Ok(status) => ExitStatus::from(status),
                Err(_) => ExitStatus {
                    code: None,
                    signal: None,
                },
            };
            let _ = exit_sender.send(Some(status));
            on_exit(status);
        });
        ProcessWatch {
            pid,
            pipes,
            kill: Some(kill),
            exited,
        }
    }

    /// Kills the process now (if it still runs) and waits for its exit.
    pub async fn kill(&mut self) -> Option<ExitStatus> {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        self.wait().await
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> Option<ExitStatus> {
        let status = self.exited.wait_for(Option::is_some).await.ok()?;
        *status
    }
}

impl Drop for ProcessWatch {
    fn drop(&mut self) {
        // Kill at once, even if the runtime that runs the watcher task is gone.
        if self.exited.borrow().is_none() {
            if let Some(pid) = self.pid {
                kill_group(pid);
            }
        }
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// SIGKILL to the child's process group (its pid: it was started as the group's leader), which
/// holds whatever a launcher started. Only called while the child is not reaped yet, so the
/// group id still names our child's group.
fn kill_group(pid: u32) {
    // SAFETY: plain syscall.
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
}
