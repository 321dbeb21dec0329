//! Simulated Xen hypervisor.
