//! What every plain-HTTP LAN client must make of its simulator's fault
//! modes (shared by the IAD, S20 and GoIP client suites; included with
//! `#[path]`, as they need nothing else of `common`).

use dma_agent::devices::{DeviceError, LanDevice};
use dma_sims::server::Endpoint;
use dma_sims::Fault;
use std::time::{Duration, Instant};

/// Garbage → `Protocol`, 500 → `Device { code: 500 }`, a broken exchange →
/// `Transport`, an answer slower than the client's timeout → `Timeout`
/// (both of those last count as unreachable); healthy again once the
/// fault is gone. `slow` must exceed the client's timeout; it goes last,
/// as a single-threaded simulator stays busy with the slow answer.
pub fn faults_map_to_errors(c: &mut dyn LanDevice, sim: &Endpoint, slow: Duration) {
    c.poll().expect("healthy");
    sim.set_fault(Fault::Garbage);
    let e = c.poll().expect_err("garbage");
    assert!(matches!(e, DeviceError::Protocol(_)), "{e:?}");
    sim.set_fault(Fault::Error500);
    let e = c.poll().expect_err("500");
    assert!(matches!(e, DeviceError::Device { code: 500, .. }), "{e:?}");
    sim.set_fault(Fault::Drop);
    let e = c.poll().expect_err("dropped");
    assert!(matches!(e, DeviceError::Transport(_)), "{e:?}");
    assert!(e.is_unreachable());
    sim.set_fault(Fault::Slow(slow));
    let e = c.poll().expect_err("slow");
    assert!(matches!(e, DeviceError::Timeout(_)), "{e:?}");
    assert!(e.is_unreachable());
    sim.set_fault(Fault::None);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.poll().is_err() {
        assert!(Instant::now() < deadline, "not healthy again 5 s after the fault ended");
        std::thread::sleep(Duration::from_millis(100));
    }
}
