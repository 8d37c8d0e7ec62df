# Rules for multiboot test guests. A module's src/test/guest/Makefile sets GUESTS (names of NAME.c files in
# its own directory) and includes this file; Maven passes OUT.
GUESTS_LIB := $(dir $(lastword $(MAKEFILE_LIST)))lib
OUT ?= build
CC ?= gcc
GUEST_CFLAGS := -m32 -march=i686 -mgeneral-regs-only -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
  -fno-builtin -nostdlib -O2 -Wall -Wextra -Werror --param=min-pagesize=0 -I$(GUESTS_LIB)
GUEST_LDFLAGS := -m32 -nostdlib -no-pie -static -Wl,--build-id=none -Wl,--no-warn-rwx-segments -Wl,-T,$(GUESTS_LIB)/guest.ld
GUEST_LIB_SRCS := $(GUESTS_LIB)/start.S $(GUESTS_LIB)/runtime.c

all: $(addprefix $(OUT)/,$(addsuffix .elf,$(GUESTS)))

$(OUT)/%.elf: %.c $(GUEST_LIB_SRCS) $(wildcard $(GUESTS_LIB)/*.h) $(GUESTS_LIB)/guest.ld
	@mkdir -p $(OUT)
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB_SRCS) $<

.PHONY: all
