//! The backend's xenbus state walk, kernel-independent.
//!
//! A netback moves towards the state its frontend implies one xenbus state at
//! a time, connecting or disconnecting on the way, as the C `xen-netback`'s
//! `set_backend_state`. Keeping the walk here lets the host tests check
//! every pair of states, including those a hostile frontend can force.

/// `enum xenbus_state` values.
pub mod state {
    /// Unknown (no state node: the device is gone).
    pub const UNKNOWN: u32 = 0;
    /// Initialising.
    pub const INITIALISING: u32 = 1;
    /// Waiting for the other end's details (backend's first state).
    pub const INIT_WAIT: u32 = 2;
    /// Frontend published its details.
    pub const INITIALISED: u32 = 3;
    /// Connected.
    pub const CONNECTED: u32 = 4;
    /// Closing.
    pub const CLOSING: u32 = 5;
    /// Closed.
    pub const CLOSED: u32 = 6;
    /// Reconfiguring.
    pub const RECONFIGURING: u32 = 7;
    /// Reconfigured.
    pub const RECONFIGURED: u32 = 8;
}

/// One step of the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendStep {
    /// Switch to this state.
    Switch(u32),
    /// Connect the data path, then switch to Connected.
    ConnectThenSwitch,
    /// Tear the data path down, then switch to Closing.
    DisconnectThenClose,
}

/// The target state of the backend for a frontend state, if the frontend's
/// state calls for a move (`None`: stay, e.g. on Initialised).
pub fn backend_target(frontend: u32) -> Option<u32> {
    use state::*;
    match frontend {
        INITIALISING => Some(INIT_WAIT),
        CONNECTED => Some(CONNECTED),
        CLOSING => Some(CLOSING),
        CLOSED | UNKNOWN => Some(CLOSED),
        _ => None,
    }
}

/// The next step from `current` towards `target`; `None` when there or when
/// no step is defined (a state we never enter: the caller stops the walk).
pub fn backend_step(current: u32, target: u32) -> Option<BackendStep> {
    use state::*;
    use BackendStep::*;
    if current == target {
        return None;
    }
    match (current, target) {
        (INITIALISING, INIT_WAIT | CONNECTED | CLOSING) => Some(Switch(INIT_WAIT)),
        (INITIALISING, CLOSED) => Some(Switch(CLOSED)),
        (CLOSED, INIT_WAIT | CONNECTED) => Some(Switch(INIT_WAIT)),
        (CLOSED, CLOSING) => Some(Switch(CLOSING)),
        (INIT_WAIT, CONNECTED) => Some(ConnectThenSwitch),
        (INIT_WAIT, CLOSING | CLOSED) => Some(Switch(CLOSING)),
        (CONNECTED, INIT_WAIT | CLOSING | CLOSED) => Some(DisconnectThenClose),
        // Reconfigured (after the frontend's Reconfiguring, e.g. an XDP
        // headroom change) is Connected with the data path still up.
        (RECONFIGURED, CONNECTED) => Some(Switch(CONNECTED)),
        (RECONFIGURED, INIT_WAIT | CLOSING | CLOSED) => Some(DisconnectThenClose),
        (CLOSING, INIT_WAIT | CONNECTED | CLOSED) => Some(Switch(CLOSED)),
        _ => None,
    }
}

/// Parses a MAC as the toolstack writes it in xenstore (`mac`):
/// "00:16:3e:99:00:01". `None` for anything else.
pub fn parse_mac(s: &[u8]) -> Option<[u8; 6]> {
    let s = s.strip_suffix(b"\0").unwrap_or(s);
    if s.len() != 17 {
        return None;
    }
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut mac = [0u8; 6];
    for (i, m) in mac.iter_mut().enumerate() {
        let p = &s[3 * i..];
        if i < 5 && p[2] != b':' {
            return None;
        }
        *m = hex(p[0])? << 4 | hex(p[1])?;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    #[test]
    fn macs() {
        use super::parse_mac;
        assert_eq!(parse_mac(b"00:16:3e:99:00:0A"), Some([0, 0x16, 0x3e, 0x99, 0, 0x0a]));
        assert_eq!(parse_mac(b"00:16:3e:99:00:01\0"), Some([0, 0x16, 0x3e, 0x99, 0, 1]));
        assert_eq!(parse_mac(b"00:16:3e:99:00"), None);
        assert_eq!(parse_mac(b"00-16-3e-99-00-01"), None);
        assert_eq!(parse_mac(b"00:16:3e:99:00:0g"), None);
    }

    use super::state::*;
    use super::*;

    /// Walks from `from` to `to`, returning the steps (bounded).
    fn walk(from: u32, to: u32) -> std::vec::Vec<BackendStep> {
        let mut cur = from;
        let mut steps = std::vec::Vec::new();
        while let Some(s) = backend_step(cur, to) {
            steps.push(s);
            cur = match s {
                BackendStep::Switch(n) => n,
                BackendStep::ConnectThenSwitch => CONNECTED,
                BackendStep::DisconnectThenClose => CLOSING,
            };
            assert!(steps.len() < 8, "walk {from}->{to} does not end");
        }
        steps
    }

    #[test]
    fn every_walk_ends_at_its_target_or_stops() {
        let backend_states = [
            INITIALISING,
            INIT_WAIT,
            CONNECTED,
            CLOSING,
            CLOSED,
            RECONFIGURED,
        ];
        for from in backend_states {
            for fe in 0..=9 {
                let Some(to) = backend_target(fe) else {
                    continue;
                };
                walk(from, to);
            }
        }
    }

    #[test]
    fn reconnect_after_close_goes_through_init_wait() {
        use BackendStep::*;
        assert_eq!(
            walk(CONNECTED, INIT_WAIT),
            [DisconnectThenClose, Switch(CLOSED), Switch(INIT_WAIT)]
        );
        assert_eq!(
            walk(CLOSED, CONNECTED),
            [Switch(INIT_WAIT), ConnectThenSwitch]
        );
        assert_eq!(walk(INIT_WAIT, CLOSED), [Switch(CLOSING), Switch(CLOSED)]);
        // Reconfigured keeps the data path: back to Connected without a
        // reconnect, and torn down on the way to Closed.
        assert_eq!(walk(RECONFIGURED, CONNECTED), [Switch(CONNECTED)]);
        assert_eq!(
            walk(RECONFIGURED, CLOSED),
            [DisconnectThenClose, Switch(CLOSED)]
        );
        // A hostile frontend's unknown state moves nothing.
        assert_eq!(backend_target(42), None);
        assert_eq!(backend_target(INITIALISED), None);
    }
}
