/* The kernel headers jvmm's generated layouts come from (see regenerate.sh). */
#include <linux/kvm.h>
#include <asm/bootparam.h>
