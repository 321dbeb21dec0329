// SPDX-License-Identifier: GPL-2.0

//! One `vif` backend device: the xenbus side. Creates the `vifD.N` net
//! device at probe (so the toolstack's hotplug script finds it), advertises
//! our features, follows the frontend through the xenbus states and, on
//! connect, reads and validates everything the frontend wrote.

use kernel::prelude::*;
use kernel::str::CString;

use crate::netif::xenbus::{backend_step, backend_target, BackendStep};
use crate::netif::Credit;
use crate::queue::{Connection, FrontCaps};
use crate::vif::Vif;
use crate::xen_sys::evtchn::{queue_irq_name, EventIrq, QueueChannel};
use crate::xen_sys::netdev::{Kind, Registration};
use crate::xen_sys::xenbus::{state, Device, Then, XenbusDriver};
use crate::xen_sys::{now_us, sleep_ms};

/// The vif's own MAC address, as the C netback's: FE:FF:FF:FF:FF:FF never
/// becomes the address of the bridge it joins (a bridge takes its ports'
/// lowest).
const VIF_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];
/// The vif's qdisc length (the C netback's `XENVIF_QUEUE_LENGTH`): short,
/// since a guest that stops posting buffers makes it back up.
const VIF_TX_QUEUE_LEN: u32 = 32;

/// How long connect waits for the hotplug script (`hotplug-status`) before
/// going on without it. Emulated machines are slow: be generous.
const HOTPLUG_WAIT_MS: u32 = 20_000;

/// A missing xenstore value.
const MISSING: u32 = u32::MAX;

/// One queue's keys, as the frontend wrote them.
#[derive(Clone, Copy)]
struct QueueKeys {
    tx_ref: u32,
    rx_ref: u32,
    /// `event-channel`, or `event-channel-tx` when split.
    port: u32,
    /// `event-channel-rx` when split.
    rx_port: Option<u32>,
}

impl QueueKeys {
    fn read(dir: &CStr) -> Result<Self> {
        let get = |node: &CStr| Device::read_unsigned(dir, node, MISSING);
        let (tx_ref, rx_ref) = (get(c"tx-ring-ref"), get(c"rx-ring-ref"));
        if tx_ref == MISSING || rx_ref == MISSING {
            return Err(ENOENT);
        }
        let (tx, rx) = (get(c"event-channel-tx"), get(c"event-channel-rx"));
        let keys = if tx != MISSING && rx != MISSING {
            Self { tx_ref, rx_ref, port: tx, rx_port: Some(rx) }
        } else {
            let port = get(c"event-channel");
            if port == MISSING {
                return Err(ENOENT);
            }
            Self { tx_ref, rx_ref, port, rx_port: None }
        };
        Ok(keys)
    }
}

/// The backend of one vif: its net device (and the queues behind it),
/// from probe to remove.
pub(crate) struct Backend {
    reg: Registration<Vif>,
    /// Queues the vif was created with (the most a frontend may ask for).
    max_queues: usize,
}

#[vtable]
impl XenbusDriver for Backend {
    /// Creates the net device, advertises our features, goes to InitWait.
    fn probe(dev: &Device) -> Result<Pin<KBox<Self>>> {
        let handle = Device::read_unsigned(dev.nodename(), c"handle", MISSING);
        if handle == MISSING {
            dev.fatal(EINVAL, c"netback_mq: no valid handle in xenstore");
            return Err(EINVAL);
        }
        let domid = dev.otherend_id();
        let nq = crate::max_queues();
        let name = CString::try_from_fmt(fmt!("vif{}.{}", domid, handle))?;
        let kind = Kind::Vif { name: &name, mac: VIF_MAC, tx_queue_len: VIF_TX_QUEUE_LEN };
        let reg = Vif::new(nq, &name)
            .and_then(|vif| Registration::register(kind, dev, vif))
            .inspect_err(|e| {
                pr_err!("creating vif{}.{} failed: {:?}\n", domid, handle, e);
                dev.fatal(*e, c"netback_mq: creating the vif");
            })?;
        let be = KBox::pin(Backend { reg, max_queues: nq }, GFP_KERNEL)?;
        if let Err(e) = be.advertise(dev) {
            pr_err!("{}: writing our features failed: {:?}\n", be.name(), e);
            dev.fatal(e, c"netback_mq: writing features");
            return Ok(be);
        }
        if let Err(e) = dev.switch_state(state::INIT_WAIT) {
            pr_err!("{}: cannot switch to InitWait: {:?}\n", be.name(), e);
        }
        pr_info!(
            "{}: backend for domain {} ({}), up to {} queue(s)\n",
            be.name(),
            domid,
            dev.nodename().to_str().unwrap_or("?"),
            nq
        );
        Ok(be)
    }

    /// Frontend state changed: walk our state towards the one it implies,
    /// as the C netback.
    fn otherend_changed(&self, dev: &Device, fe_state: u32) -> Then {
        pr_debug!("{}: frontend {}\n", self.name(), state::name(fe_state));
        if fe_state == state::RECONFIGURING {
            // The frontend changes its XDP headroom (the only thing
            // Reconfiguring carries); the data path stays up.
            if matches!(dev.state(), state::CONNECTED | state::RECONFIGURED) {
                self.read_xdp_headroom(dev);
                let _ = dev.switch_state(state::RECONFIGURED);
            }
            return Then::Stay;
        }
        if fe_state == state::CONNECTED && dev.state() == state::RECONFIGURED {
            // The C netfront announces Reconfiguring before it writes the
            // new headroom; by the time it is Connected again the key is
            // final: read it once more.
            self.read_xdp_headroom(dev);
        }
        #[cfg(xennet_hostile)]
        if crate::hostile::stay_in_init_wait(fe_state) {
            return Then::Stay;
        }
        let Some(target) = backend_target(fe_state) else {
            if fe_state != state::INITIALISED {
                pr_warn!("{}: frontend in unexpected state {}; ignored\n", self.name(), fe_state);
            }
            return Then::Stay;
        };
        let mut cur = dev.state();
        while let Some(step) = backend_step(cur, target) {
            let next = match step {
                BackendStep::Switch(s) => s,
                BackendStep::ConnectThenSwitch => {
                    if let Err(e) = self.connect(dev) {
                        pr_err!("{}: connecting to the frontend failed: {:?}\n", self.name(), e);
                        self.vif().detach(self.reg.device());
                        // Records the error in xenstore and switches to Closing.
                        dev.fatal(e, c"netback_mq: connecting to the frontend");
                        return Then::Stay;
                    }
                    state::CONNECTED
                }
                BackendStep::DisconnectThenClose => {
                    self.vif().detach(self.reg.device());
                    pr_info!("{}: disconnected\n", self.name());
                    state::CLOSING
                }
            };
            if let Err(e) = dev.switch_state(next) {
                pr_warn!("{}: switching to {} failed: {:?}\n", self.name(), state::name(next), e);
                return Then::Stay;
            }
            cur = next;
        }
        // The toolstack removed the device (xl network-detach, domain gone):
        // unregistering runs `remove` once this borrow has ended.
        if fe_state == state::UNKNOWN || (fe_state == state::CLOSED && !dev.is_online()) {
            return Then::Unregister;
        }
        Then::Stay
    }

    /// Tears everything down: the connection, then the net device.
    fn remove(this: Pin<KBox<Self>>, dev: &Device) {
        this.vif().detach(this.reg.device());
        dev.remove_node(c"hotplug-status");
        // Dropping `this` unregisters and frees the net device, then the vif.
    }
}

impl Backend {
    fn vif(&self) -> &Vif {
        self.reg.data()
    }

    fn name(&self) -> &str {
        self.reg.device().name()
    }

    /// Writes the features we offer the frontend.
    fn advertise(&self, dev: &Device) -> Result {
        let dir = dev.nodename();
        dev.transaction(|t| {
            t.write(dir, c"feature-sg", c"1")?;
            t.write(dir, c"feature-gso-tcpv4", c"1")?;
            t.write(dir, c"feature-gso-tcpv6", c"1")?;
            t.write(dir, c"feature-ipv6-csum-offload", c"1")?;
            t.write(dir, c"feature-rx-copy", c"1")?;
            t.write(dir, c"feature-rx-flip", c"0")?;
            t.write_u32(dir, c"feature-split-event-channels", u32::from(crate::separate_tx_rx_irq()))?;
            t.write(dir, c"feature-ctrl-ring", c"1")?;
            t.write(dir, c"feature-multicast-control", c"1")?;
            t.write(dir, c"feature-xdp-headroom", c"1")?;
            t.write_u32(dir, c"multi-queue-max-queues", self.max_queues as u32)?;
            #[cfg(xennet_hostile)]
            crate::hostile::advertise(t, dir)?;
            Ok(())
        })
    }

    /// Reads the frontend's rings, event channels and features, maps and
    /// binds them, and starts traffic once the hotplug script is done.
    fn connect(&self, dev: &Device) -> Result {
        let fe = dev.otherend()?;
        let fe = fe.as_ref();
        let name = self.name();
        if Device::read_unsigned(fe, c"request-rx-copy", 0) != 1 {
            pr_err!("{}: frontend does not support rx-copy (required)\n", name);
            return Err(EOPNOTSUPP);
        }
        if Device::read_unsigned(fe, c"feature-rx-notify", 0) != 1 {
            pr_err!("{}: frontend lacks feature-rx-notify (required)\n", name);
            return Err(EINVAL);
        }
        let requested = Device::read_unsigned(fe, c"multi-queue-num-queues", 1);
        if requested == 0 || requested as usize > self.max_queues {
            pr_err!(
                "{}: frontend asked for {} queues; between 1 and {} are possible\n",
                name,
                requested,
                self.max_queues
            );
            return Err(EINVAL);
        }
        let nq = requested as usize;
        let caps = FrontCaps {
            sg: Device::read_unsigned(fe, c"feature-sg", 0) == 1,
            gso4: Device::read_unsigned(fe, c"feature-gso-tcpv4", 0) == 1,
            gso6: Device::read_unsigned(fe, c"feature-gso-tcpv6", 0) == 1,
            csum4: Device::read_unsigned(fe, c"feature-no-csum-offload", 0) != 1,
            csum6: Device::read_unsigned(fe, c"feature-ipv6-csum-offload", 0) == 1,
        };
        let domid = dev.otherend_id();
        let credit = self.read_rate(dev);
        self.read_mac(dev);
        let vif = self.vif();
        let mcast = Device::read_unsigned(fe, c"request-multicast-control", 0) == 1;
        vif.ctrl().set_features(mcast, Device::read_unsigned(fe, c"xdp-headroom", 0));
        let (ctrl_ref, ctrl_port) =
            (Device::read_unsigned(fe, c"ctrl-ring-ref", MISSING), Device::read_unsigned(fe, c"event-channel-ctrl", MISSING));
        let has_ctrl = ctrl_ref != MISSING && ctrl_port != MISSING;
        if has_ctrl {
            vif.connect_ctrl(dev, ctrl_ref, ctrl_port, nq as u32)?;
        }
        let mut conns = KVec::with_capacity(nq, GFP_KERNEL)?;
        let mut split = false;
        for q in vif.queues[..nq].iter() {
            let keys = if nq == 1 {
                QueueKeys::read(fe)
            } else {
                let dir = CString::try_from_fmt(fmt!("{}/queue-{}", fe.to_str().map_err(|_| EINVAL)?, q.index))?;
                QueueKeys::read(&dir)
            }
            .inspect_err(|_| pr_err!("{}: queue {}: ring references or event channel missing\n", name, q.index))?;
            let tx_map = dev.map_ring(keys.tx_ref).inspect_err(|e| {
                pr_err!("{}: queue {}: mapping TX ring grant {} failed: {:?}\n", name, q.index, keys.tx_ref, e)
            })?;
            let rx_map = dev.map_ring(keys.rx_ref).inspect_err(|e| {
                pr_err!("{}: queue {}: mapping RX ring grant {} failed: {:?}\n", name, q.index, keys.rx_ref, e)
            })?;
            split = keys.rx_port.is_some();
            // Named like the C driver's ("vif3.0-q0-tx"), so /proc/interrupts and
            // the benchmark tell the vifs apart.
            let irq_name = |ch| queue_irq_name(name, q.index, ch);
            let first = if split { QueueChannel::Tx } else { QueueChannel::Shared };
            // The bindings hold a reference to the queue, their target.
            let irq = EventIrq::bind_interdomain(dev, keys.port, &irq_name(first)?, q.clone()).inspect_err(|e| {
                pr_err!("{}: queue {}: binding event channel {} failed: {:?}\n", name, q.index, keys.port, e)
            })?;
            let rx_irq = match keys.rx_port {
                Some(p) => Some(EventIrq::bind_interdomain(dev, p, &irq_name(QueueChannel::Rx)?, q.clone()).inspect_err(|e| {
                    pr_err!("{}: queue {}: binding event channel {} failed: {:?}\n", name, q.index, p, e)
                })?),
                None => None,
            };
            let conn = Connection::new(tx_map, rx_map, irq, rx_irq, domid, credit)
                .inspect_err(|_| pr_err!("{}: queue {}: frontend's rings are malformed\n", name, q.index))?;
            conns.push(conn, GFP_KERNEL)?;
        }
        vif.attach(self.reg.device(), conns, caps)?;
        self.wait_for_hotplug(dev);
        pr_info!(
            "{}: connected to domain {}: {} queue(s), {} event channels, sg {} gso {}/{} csum {}/{} ctrl-ring {} mcast-control {} xdp-headroom {}\n",
            name,
            domid,
            nq,
            if split { "split" } else { "shared" },
            u8::from(caps.sg),
            u8::from(caps.gso4),
            u8::from(caps.gso6),
            u8::from(caps.csum4),
            u8::from(caps.csum6),
            u8::from(has_ctrl),
            u8::from(mcast),
            vif.ctrl().xdp_headroom()
        );
        // Without a control ring the frontend cannot register static
        // grants: a NIC queue steered by its MAC maps each buffer itself.
        // (With one, the NIC path starts at its first `ADD`.)
        if !has_ctrl {
            vif.queues[0].try_nic(name, Some(domid));
        }
        Ok(())
    }

    /// The guest's MAC the toolstack wrote (`mac`): a NIC queue steered by
    /// it can serve the guest's receive.
    fn read_mac(&self, dev: &Device) {
        let mut buf = [0u8; 24];
        let Ok(n) = Device::read_into(dev.nodename(), c"mac", &mut buf) else { return };
        match crate::netif::xenbus::parse_mac(&buf[..n]) {
            Some(mac) => self.vif().set_guest_mac(mac),
            None => pr_warn!("{}: malformed mac in xenstore; no NIC queue for it\n", self.name()),
        }
    }

    /// The frontend's `xdp-headroom`, applied to guest receive.
    fn read_xdp_headroom(&self, dev: &Device) {
        let Ok(fe) = dev.otherend() else { return };
        let h = Device::read_unsigned(&fe, c"xdp-headroom", 0);
        self.vif().ctrl().set_xdp_headroom(h);
        pr_info!("{}: XDP headroom {}\n", self.name(), self.vif().ctrl().xdp_headroom());
    }

    /// The guest-transmit rate limit the toolstack set (`rate` =
    /// "BYTES,USECS", from `rate=` in the vif spec); each queue gets it.
    fn read_rate(&self, dev: &Device) -> Credit {
        let mut buf = [0u8; 48];
        let Ok(n) = Device::read_into(dev.nodename(), c"rate", &mut buf) else {
            return Credit::unlimited();
        };
        match Credit::parse_rate(&buf[..n]) {
            Some((bytes, usecs)) => {
                pr_info!("{}: rate limit {} bytes per {} us\n", self.name(), bytes, usecs);
                Credit::new(bytes, usecs, now_us())
            }
            None => {
                pr_warn!("{}: malformed rate in xenstore; no limit\n", self.name());
                Credit::unlimited()
            }
        }
    }

    /// Waits (bounded) for the hotplug script to report `connected`, as the
    /// C netback does before announcing Connected: until then the vif may
    /// not be on its bridge yet.
    fn wait_for_hotplug(&self, dev: &Device) {
        let mut buf = [0u8; 16];
        let mut waited = 0;
        loop {
            let status = Device::read_into(dev.nodename(), c"hotplug-status", &mut buf);
            if matches!(status, Ok(n) if &buf[..n] == b"connected") {
                return;
            }
            if waited >= HOTPLUG_WAIT_MS {
                pr_warn!("{}: hotplug script has not reported; connecting anyway\n", self.name());
                return;
            }
            sleep_ms(20);
            waited += 20;
        }
    }
}
