//! One gdb session: gdbstub's state machine, driven over the connection until gdb detaches,
//! kills, disappears, or the run ends.

use super::conn::{self, GdbConn, Wake};
use super::debugger::Debugger;
use super::error::DebugError;
use crate::run_loop::VcpuControl;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStubBuilder, GdbStubError};
use nix::sys::eventfd::EventFd;
use std::net::TcpStream;
use std::sync::Arc;

/// How a gdb session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The run ended before any gdb connected.
    NeverConnected,
    /// gdb detached (`detach`, `quit`): the guest runs on without breakpoints.
    Detached,
    /// The connection broke or gdb spoke nonsense: handled like a detach.
    Lost(String),
    /// gdb's `kill`: the run stops (exit status 6).
    Killed,
    /// Every vCPU ended while gdb was attached.
    RunOver,
    /// The stub itself failed (a minikvm bug): the run stops with status 7.
    Failed(String),
}

/// Why a session broke off: the connection, or gdbstub (a packet it could not take).
#[derive(Debug, thiserror::Error)]
enum Broken {
    #[error("{0}")]
    Connection(#[from] std::io::Error),
    #[error("{0}")]
    Stub(String),
}

/// A connection error says it best itself (e.g. the packet limit); anything else in gdbstub's words.
impl From<GdbStubError<DebugError, std::io::Error>> for Broken {
    fn from(e: GdbStubError<DebugError, std::io::Error>) -> Self {
        if e.is_connection_error() {
            if let Some((io, _)) = e.into_connection_error() {
                return Broken::Connection(io);
            }
            return Broken::Stub("connection error".into());
        }
        Broken::Stub(e.to_string())
    }
}

/// Fault injection for tests: `MINIKVM_FAULT_INJECT=gdb-panic` makes the stub's thread panic once
/// gdb has connected, standing in for any bug that kills it mid-session (README, "Exit status").
fn injected_panic() {
    if std::env::var("MINIKVM_FAULT_INJECT").is_ok_and(|v| v == "gdb-panic") {
        panic!("fault injected by MINIKVM_FAULT_INJECT");
    }
}

/// Serves the gdb on `stream` from its first packet to the end of the session, and leaves the
/// vCPUs running on (detach, lost connection) or stopping (kill); [`say_how_it_ended`] tells.
pub fn run(dbg: &mut Debugger, stream: TcpStream, controls: &[Arc<VcpuControl>], wake: &Arc<EventFd>) -> SessionEnd {
    if let Ok(peer) = stream.peer_addr() {
        note!("minikvm: gdb connected from {peer}");
    }
    injected_panic();
    dbg.attach();
    dbg.choose_description();
    let conn = GdbConn::new(stream, controls.to_vec());
    let end = drive(dbg, conn, wake).unwrap_or_else(|e| SessionEnd::Lost(e.to_string()));
    match &end {
        SessionEnd::Killed => dbg.finish(true),
        SessionEnd::Detached | SessionEnd::Lost(_) => dbg.finish(false),
        SessionEnd::RunOver | SessionEnd::NeverConnected | SessionEnd::Failed(_) => {}
    }
    end
}

/// Says on minikvm's terminal how a session ended. Called once the next gdb may come in (a
/// client that reconnects as soon as it reads "attaches again" must not be turned away).
pub fn say_how_it_ended(end: &SessionEnd) {
    match end {
        SessionEnd::Killed => note!("\r\nminikvm: killed from gdb"),
        SessionEnd::Detached => {
            note!("\r\nminikvm: gdb detached; the guest runs on (a new `target remote` attaches again)")
        }
        SessionEnd::Lost(why) => {
            note!("\r\nminikvm: lost gdb ({why}); detached, the guest runs on (a new `target remote` attaches again)")
        }
        SessionEnd::RunOver | SessionEnd::NeverConnected | SessionEnd::Failed(_) => {}
    }
}

/// Runs gdbstub's state machine until the session ends. Packets go into a buffer of
/// [`conn::MAX_PACKET`] bytes that never grows (the size gdb is told in `PacketSize`).
fn drive(dbg: &mut Debugger, conn: GdbConn, wake: &EventFd) -> Result<SessionEnd, Broken> {
    let mut packet = vec![0u8; conn::MAX_PACKET];
    let stub =
        GdbStubBuilder::new(conn).with_packet_buffer(&mut packet).build().map_err(|e| Broken::Stub(e.to_string()))?;
    let mut sm = stub.run_state_machine(dbg)?;
    loop {
        sm = match sm {
            GdbStubStateMachine::Idle(mut g) => match g.borrow_conn().wait(wake)? {
                Wake::Gdb => {
                    let byte = g.borrow_conn().read()?;
                    dbg.new_request();
                    g.incoming_data(dbg, byte)?
                }
                Wake::Vcpu => {
                    // Stopped vCPUs only end (the controller stopped the run): nothing to tell gdb
                    // until it asks, unless nothing is left.
                    dbg.note_events();
                    if dbg.all_ended() {
                        return Ok(SessionEnd::RunOver);
                    }
                    g.into()
                }
            },
            GdbStubStateMachine::Running(mut g) => match dbg.take_events() {
                Some(reason) => {
                    for text in dbg.refusals.take_messages() {
                        g.borrow_conn().console(&text)?;
                    }
                    g.report_stop(dbg, reason)?
                }
                None => match g.borrow_conn().wait(wake)? {
                    Wake::Gdb => {
                        let byte = g.borrow_conn().read()?;
                        dbg.new_request();
                        g.incoming_data(dbg, byte)?
                    }
                    Wake::Vcpu => g.into(),
                },
            },
            GdbStubStateMachine::CtrlCInterrupt(g) => {
                let reason = dbg.interrupt();
                g.interrupt_handled(dbg, Some(reason))?
            }
            GdbStubStateMachine::Disconnected(g) => {
                return Ok(match g.get_reason() {
                    DisconnectReason::Disconnect => SessionEnd::Detached,
                    DisconnectReason::Kill => SessionEnd::Killed,
                    DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_) => SessionEnd::RunOver,
                })
            }
        };
    }
}
