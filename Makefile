# SPDX-License-Identifier: GPL-2.0
# Top-level entry points. The kernel build itself is driven by Kbuild.
#
#   make            build netback_mq.ko and netfront_opt.ko (kernel built/cached first)
#   make clippy     the same, under the kernel's clippy lints (CLIPPY=1)
#   make run        boot the Xen rig and move traffic through the chosen drivers
#   make test       every test: host cargo tests, module build, rig suites
#   make bench      every driver pair on the rig: throughput and per-packet costs
#                   (table, JSON, SVG plots; Documentation/benchmarks.md)
#   make install    the modules under /lib/modules/<kernel>/updates, depmod, and
#                   packaging/xen-rust-net.conf in /etc/modprobe.d (our drivers
#                   load for Xen vif devices instead of the C ones); DESTDIR stages
#   make clean

SHELL := /bin/bash
KDIR ?= $(shell scripts/kernel-build)

.PHONY: modules clippy run test bench clean setup install

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

clippy:
	$(MAKE) -C $(KDIR) M=$(CURDIR) CLIPPY=1 modules

setup:
	scripts/setup

KRELEASE = $(shell cat $(KDIR)/include/config/kernel.release)

install: modules
	$(MAKE) -C $(KDIR) M=$(CURDIR) INSTALL_MOD_PATH=$(DESTDIR) INSTALL_MOD_DIR=updates modules_install
	install -D -m 644 packaging/xen-rust-net.conf $(DESTDIR)/etc/modprobe.d/xen-rust-net.conf
	depmod $(if $(DESTDIR),-b $(DESTDIR)) $(KRELEASE)

run:
	scripts/run

test:
	scripts/test

bench:
	scripts/bench

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	rm -rf xen_sys/generated
