/*
 * A virtio device as a test guest's driver reaches it: the virtio-mmio registers at base, or (pci) virtio-pci's
 * common and device-specific configuration structures. The accessors the driver suites share; offsets as the
 * virtio 1.2 specification gives them (4.2.2 for mmio, 4.1.4.3 for pci's common configuration).
 */
#ifndef VIRTIO_TRANSPORT_H
#define VIRTIO_TRANSPORT_H

#include "guest.h"

struct vtransport {
    int pci;
    uptr base;                 /* mmio window, or BAR0 */
    uptr common, devcfg;       /* pci: the common and device-specific configuration */
};

static inline u32 mr(const struct vtransport *t, u32 off) { return mmio_read32(t->base + off); }
static inline void mw(const struct vtransport *t, u32 off, u32 v) { mmio_write32(t->base + off, v); }

static inline u8 get_status(const struct vtransport *t)
{
    return t->pci ? mmio_read8(t->common + 0x14) : (u8)mr(t, 0x70);
}

static inline void set_status(const struct vtransport *t, u8 s)
{
    if (t->pci) mmio_write8(t->common + 0x14, s); else mw(t, 0x70, s);
}

static inline u32 device_features(const struct vtransport *t, u32 sel)
{
    if (t->pci) { mmio_write32(t->common + 0x00, sel); return mmio_read32(t->common + 0x04); }
    mw(t, 0x14, sel);
    return mr(t, 0x10);
}

static inline void driver_features(const struct vtransport *t, u32 sel, u32 v)
{
    if (t->pci) { mmio_write32(t->common + 0x08, sel); mmio_write32(t->common + 0x0c, v); return; }
    mw(t, 0x24, sel);
    mw(t, 0x20, v);
}

#endif
