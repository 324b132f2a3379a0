//! Who is at the other end of the parent's spawn-mode port (Linux, through /proc).
//!
//! Any local process can connect to the port a parent listens on for its child: a stranger
//! that connects first would get the readiness probe, the token and calls. So once the parent
//! accepted a connection and stopped listening, it looks at every connection accepted on that
//! port (`/proc/net/tcp`), finds the socket at the other end, and checks that this socket is
//! held by the child or one of its descendants (a launcher's children count: `sh -c`, `npx`).
//! Nothing is sent before that, not even the ZMTP greeting.

use std::collections::{HashMap, HashSet};

/// A connection accepted on the port whose other end is not the child's.
#[derive(Debug)]
pub(crate) struct Stranger {
    /// The other end's address as `127.0.0.1:port`.
    pub peer: String,
    /// The process that holds it, when it can be seen.
    pub pid: Option<u32>,
}

/// Checks every established connection accepted on 127.0.0.1:`port`: `Ok(n)` when all `n` of
/// them (at least one) belong to `child`'s process tree, else the first stranger.
pub(crate) fn check_accepted(port: u16, child: u32) -> Result<usize, Stranger> {
    let sockets = tcp_sockets();
    let tree = process_tree(child);
    let mut owners: Option<HashMap<u64, u32>> = None;
    let mut ours = 0;
    for accepted in sockets
        .iter()
        .filter(|s| s.local.1 == port && s.established)
    {
        let peer = format!("{}:{}", ipv4(accepted.remote.0), accepted.remote.1);
        // The other end of the connection: the socket whose local address is our remote one.
        let other_end = sockets
            .iter()
            .find(|s| s.local == accepted.remote && s.remote == accepted.local);
        let Some(other_end) = other_end else {
            return Err(Stranger { peer, pid: None });
        };
        let owners = owners.get_or_insert_with(|| socket_owners(&tree));
        match owners.get(&other_end.inode) {
            Some(_) => ours += 1,
            None => {
                return Err(Stranger {
                    peer,
                    pid: socket_holder(other_end.inode),
                })
            }
        }
    }
    if ours == 0 {
        return Err(Stranger {
            peer: "nobody".into(),
            pid: None,
        });
    }
    Ok(ours)
}

/// One line of `/proc/net/tcp`.
struct TcpSocket {
    local: (u32, u16),
    remote: (u32, u16),
    established: bool,
    inode: u64,
}

fn tcp_sockets() -> Vec<TcpSocket> {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    table.lines().skip(1).filter_map(parse_tcp_line).collect()
}

/// `  0: 0100007F:A2C4 0100007F:1F90 01 ... uid timeout inode ...`
fn parse_tcp_line(line: &str) -> Option<TcpSocket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let address = |text: &str| -> Option<(u32, u16)> {
        let (ip, port) = text.split_once(':')?;
        Some((
            u32::from_str_radix(ip, 16).ok()?,
            u16::from_str_radix(port, 16).ok()?,
        ))
    };
    Some(TcpSocket {
        local: address(fields.get(1)?)?,
        remote: address(fields.get(2)?)?,
        established: *fields.get(3)? == "01",
        inode: fields.get(9)?.parse().ok()?,
    })
}

/// The address as /proc writes it (the kernel's byte order) in dotted form.
fn ipv4(raw: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(raw.to_le_bytes())
}

/// `root` and all its descendants, from the parent pids in /proc.
fn process_tree(root: u32) -> HashSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, ppid) in all_pids()
        .into_iter()
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
    {
        children.entry(ppid).or_default().push(pid);
    }
    let mut tree = HashSet::from([root]);
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if tree.insert(child) {
                todo.push(child);
            }
        }
    }
    tree
}

fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    // State, then the parent pid.
    crate::procfs::stat_fields(pid)?.get(1)?.parse().ok()
}

/// The socket inodes held by the processes in `pids`, each with its holder.
fn socket_owners(pids: &HashSet<u32>) -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    for &pid in pids {
        for inode in socket_inodes(pid) {
            owners.insert(inode, pid);
        }
    }
    owners
}

fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| {
        let target = std::fs::read_link(fd.ok()?.path()).ok()?;
        let text = target.to_str()?;
        text.strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    })
    .collect()
}

/// The process holding socket `inode`, if this process may look at it.
fn socket_holder(inode: u64) -> Option<u32> {
    all_pids()
        .into_iter()
        .find(|&pid| socket_inodes(pid).contains(&inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proc_net_tcp_line_is_read() {
        let line = "   3: 0100007F:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 20 4 30 10 -1";
        let socket = parse_tcp_line(line).unwrap();
        assert_eq!(socket.local, (0x0100007F, 0xA2C4));
        assert_eq!(ipv4(socket.local.0), std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(socket.remote.1, 0x1F90);
        assert!(socket.established);
        assert_eq!(socket.inode, 123456);
    }

    #[test]
    fn a_process_tree_holds_its_root() {
        let me = std::process::id();
        assert!(process_tree(me).contains(&me));
    }
}
