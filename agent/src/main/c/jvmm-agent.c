/*
 * jvmm-agent: runs commands and moves files for the host, one request per connection.
 *
 * As a micro-VM's /init (PID 1) it mounts the pseudo file systems, loads the kernel modules listed in
 * /jvmm/modules, configures the network from /jvmm/net if present, and listens on vsock. Run by hand,
 * `jvmm-agent --listen-unix PATH` serves the same protocol on a Unix socket (for tests on the host), and
 * `jvmm-agent --listen-vsock PORT` on vsock without the PID 1 setup.
 *
 * Framing, both ways: u8 type, u32 length (big-endian), then length bytes. Strings are u32 length + bytes.
 * Requests: EXEC, COPY_IN, COPY_OUT, POWEROFF, PING open a connection; STDIN, SIGNAL and DATA follow them.
 * See dev.jvmm.agent.AgentProtocol for the layout of each payload.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "jvmm-agent 1"
#define DEFAULT_PORT 1024
#define MAX_FRAME (1u << 20) /* the largest payload either side sends or accepts */
#define CHUNK (64u << 10)    /* output and file data go out in chunks of this size */
#define MAX_ARGS 4096

enum {
    T_EXEC = 0x01, T_STDIN = 0x02, T_SIGNAL = 0x03, T_COPY_IN = 0x04, T_DATA = 0x05, T_COPY_OUT = 0x06,
    T_POWEROFF = 0x07, T_PING = 0x08,
    T_STDOUT = 0x11, T_STDERR = 0x12, T_EXIT = 0x13, T_OK = 0x20, T_ERROR = 0x21,
};
enum { EXEC_STDIN = 1 }; /* EXEC flag: STDIN frames follow; otherwise stdin is empty */

static int pid1;
static volatile sig_atomic_t stopping;

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("jvmm-agent: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- framing ---- */

static int read_full(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int send_frame(int fd, int type, const void *data, uint32_t len) {
    uint8_t h[5];
    h[0] = (uint8_t)type;
    put_u32(h + 1, len);
    if (write_full(fd, h, 5) < 0) return -1;
    return len ? write_full(fd, data, len) : 0;
}

static int send_error(int fd, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    return send_frame(fd, T_ERROR, msg, (uint32_t)n);
}

/* Reads one whole frame into a buffer of MAX_FRAME bytes; -1 at end of stream, -2 on a bad length. */
static int read_frame(int fd, int *type, uint8_t *buf, uint32_t *len) {
    uint8_t h[5];
    if (read_full(fd, h, 5) < 0) return -1;
    *type = h[0];
    *len = get_u32(h + 1);
    if (*len > MAX_FRAME) return -2;
    return read_full(fd, buf, *len);
}

/* A payload being parsed: every field is checked against what is left. */
struct cursor {
    const uint8_t *p;
    uint32_t left;
};

static int cur_u32(struct cursor *c, uint32_t *v) {
    if (c->left < 4) return -1;
    *v = get_u32(c->p);
    c->p += 4;
    c->left -= 4;
    return 0;
}

/* A string as a fresh NUL-terminated copy; refuses embedded NULs, which no C string can carry. */
static int cur_str(struct cursor *c, char **s) {
    uint32_t n;
    if (cur_u32(c, &n) < 0 || n > c->left || memchr(c->p, 0, n)) return -1;
    *s = malloc(n + 1);
    if (!*s) return -1;
    memcpy(*s, c->p, n);
    (*s)[n] = 0;
    c->p += n;
    c->left -= n;
    return 0;
}

/* ---- EXEC ---- */

struct inbuf {
    uint8_t *data;
    uint32_t len;
};

static void set_nonblock(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Forwards what a pipe holds now as frames of `type`; returns 1 at its end, 0 when drained for now, -1 if the
 * host is gone. */
static int pump(int pipe_fd, int sock, int type, uint8_t *buf) {
    for (;;) {
        ssize_t r = read(pipe_fd, buf, CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno == EAGAIN ? 0 : 1;
        if (r == 0) return 1;
        if (send_frame(sock, type, buf, (uint32_t)r) < 0) return -1;
    }
}

static void child_exec(char **argv, char **env, uint32_t envc, const char *cwd, int in, int out, int err, int report) {
    setsid(); /* its own process group, so that a signal or a lost host reaches everything it starts */
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    dup2(in, 0), dup2(out, 1), dup2(err, 2);
    for (uint32_t i = 0; i < envc; i++) {
        char *eq = strchr(env[i], '=');
        if (eq) {
            *eq = 0;
            setenv(env[i], eq + 1, 1);
        } else {
            unsetenv(env[i]);
        }
    }
    uint8_t why[8];
    if (*cwd && chdir(cwd) < 0) {
        put_u32(why, 1), put_u32(why + 4, (uint32_t)errno);
    } else {
        execvp(argv[0], argv);
        put_u32(why, 2), put_u32(why + 4, (uint32_t)errno);
    }
    write_full(report, why, 8);
    _exit(127);
}

static void serve_exec(int sock, struct cursor *c) {
    uint8_t *buf = malloc(CHUNK);
    uint32_t flags, argc, envc;
    char **argv = NULL, **env = NULL, *cwd = NULL;
    if (cur_u32(c, &flags) < 0 || cur_u32(c, &argc) < 0 || argc == 0 || argc > MAX_ARGS) {
        send_error(sock, "bad EXEC request: argv");
        return;
    }
    argv = calloc(argc + 1, sizeof *argv);
    for (uint32_t i = 0; i < argc; i++)
        if (!argv || cur_str(c, &argv[i]) < 0) {
            send_error(sock, "bad EXEC request: argv[%u]", i);
            return;
        }
    if (cur_u32(c, &envc) < 0 || envc > MAX_ARGS) {
        send_error(sock, "bad EXEC request: environment");
        return;
    }
    env = calloc(envc + 1, sizeof *env);
    for (uint32_t i = 0; i < envc; i++)
        if (!env || cur_str(c, &env[i]) < 0) {
            send_error(sock, "bad EXEC request: environment entry %u", i);
            return;
        }
    if (cur_str(c, &cwd) < 0 || c->left != 0) {
        send_error(sock, "bad EXEC request: working directory");
        return;
    }
    int in[2], out[2], err[2], report[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
        pipe2(report, O_CLOEXEC) < 0) {
        send_error(sock, "pipe: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        send_error(sock, "fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) child_exec(argv, env, envc, cwd, in[0], out[1], err[1], report[1]);
    close(in[0]), close(out[1]), close(err[1]), close(report[1]);
    uint8_t why[8];
    if (read_full(report[0], why, 8) == 0) {
        waitpid(pid, NULL, 0);
        int e = (int)get_u32(why + 4);
        if (get_u32(why) == 1) send_error(sock, "working directory %s: %s", cwd, strerror(e));
        else send_error(sock, "cannot run %s: %s", argv[0], strerror(e));
        return;
    }
    close(report[0]);
    if (!(flags & EXEC_STDIN)) close(in[1]), in[1] = -1;
    else set_nonblock(in[1]);
    set_nonblock(out[0]);
    set_nonblock(err[0]);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* -1 on old kernels: then waitpid is polled */

    /* Host frames (STDIN, SIGNAL) are gathered without blocking, so the child's output never waits on them. */
    struct inbuf ib = {malloc(5 + MAX_FRAME), 0};
    uint8_t *pending = NULL; /* stdin bytes not yet taken by the child */
    uint32_t pending_len = 0;
    int out_open = 1, err_open = 1, exited = 0, status = 0, lost = 0;
    while (!exited || out_open || err_open) {
        struct pollfd p[5];
        int n = 0, i_out = -1, i_err = -1, i_sock = -1, i_in = -1, i_pid = -1;
        if (out_open) i_out = n, p[n++] = (struct pollfd){out[0], POLLIN, 0};
        if (err_open) i_err = n, p[n++] = (struct pollfd){err[0], POLLIN, 0};
        if (pending_len == 0) i_sock = n, p[n++] = (struct pollfd){sock, POLLIN, 0};
        if (pending_len && in[1] >= 0) i_in = n, p[n++] = (struct pollfd){in[1], POLLOUT, 0};
        if (!exited && pidfd >= 0) i_pid = n, p[n++] = (struct pollfd){pidfd, POLLIN, 0};
        int timeout = exited ? 0 : pidfd < 0 ? 20 : -1;
        int ready = poll(p, (nfds_t)n, timeout);
        if (ready < 0 && errno != EINTR) break;
        if (!exited && (pidfd < 0 || (i_pid >= 0 && p[i_pid].revents))) {
            if (waitpid(pid, &status, WNOHANG) == pid) exited = 1;
        }
        if (exited && ready == 0) break; /* drained: anything left belongs to processes it left behind */
        if (i_out >= 0 && p[i_out].revents) {
            int r = pump(out[0], sock, T_STDOUT, buf);
            if (r < 0) { lost = 1; break; }
            if (r > 0) out_open = 0;
        }
        if (i_err >= 0 && p[i_err].revents) {
            int r = pump(err[0], sock, T_STDERR, buf);
            if (r < 0) { lost = 1; break; }
            if (r > 0) err_open = 0;
        }
        if (i_in >= 0 && p[i_in].revents) {
            ssize_t w = write(in[1], pending, pending_len);
            if (w > 0) memmove(pending, pending + w, pending_len - (uint32_t)w), pending_len -= (uint32_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) pending_len = 0, close(in[1]), in[1] = -1;
        }
        if (i_sock >= 0 && p[i_sock].revents) {
            ssize_t r = recv(sock, ib.data + ib.len, 5 + MAX_FRAME - ib.len, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) { /* the host is gone: so is the command */
                lost = 1;
                break;
            }
            if (r > 0) ib.len += (uint32_t)r;
        }
        /* Whole frames are acted on; a STDIN frame's bytes wait in `pending` until the child takes them. */
        while (ib.len >= 5 && pending_len == 0) {
            uint32_t len = get_u32(ib.data + 1);
            if (len > MAX_FRAME) {
                send_error(sock, "frame of %u bytes: more than %u", len, MAX_FRAME);
                lost = 1;
                break;
            }
            if (ib.len < 5 + len) break;
            int type = ib.data[0];
            if (type == T_STDIN && len == 0) {
                if (in[1] >= 0) close(in[1]), in[1] = -1;
            } else if (type == T_STDIN) {
                if (in[1] >= 0) {
                    if (!pending) pending = malloc(MAX_FRAME);
                    memcpy(pending, ib.data + 5, len);
                    pending_len = len;
                }
            } else if (type == T_SIGNAL && len == 4) {
                kill(-pid, (int)get_u32(ib.data + 5));
            } else {
                send_error(sock, "unexpected frame 0x%02x of %u bytes during EXEC", type, len);
                lost = 1;
                break;
            }
            memmove(ib.data, ib.data + 5 + len, ib.len - 5 - len);
            ib.len -= 5 + len;
        }
        if (lost) break;
    }
    if (lost || !exited) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        if (lost) return;
    }
    uint8_t e[8];
    if (WIFSIGNALED(status)) put_u32(e, 1), put_u32(e + 4, (uint32_t)WTERMSIG(status));
    else put_u32(e, 0), put_u32(e + 4, (uint32_t)WEXITSTATUS(status));
    send_frame(sock, T_EXIT, e, 8);
}

/* ---- files ---- */

static void make_parents(char *path) {
    for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        mkdir(path, 0755);
        *s = '/';
    }
}

static void serve_copy_in(int sock, struct cursor *c, uint8_t *buf) {
    uint32_t mode;
    char *path;
    if (cur_u32(c, &mode) < 0 || cur_str(c, &path) < 0 || c->left != 0 || !*path) {
        send_error(sock, "bad COPY_IN request");
        return;
    }
    make_parents(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 07777);
    char failure[256] = "";
    if (fd < 0) snprintf(failure, sizeof failure, "open %s: %s", path, strerror(errno));
    /* Reads the data to its end even after a failure, so the host hears the error and not a reset. */
    for (;;) {
        int type;
        uint32_t len;
        int r = read_frame(sock, &type, buf, &len);
        if (r == -2) {
            send_error(sock, "frame of %u bytes: more than %u", len, MAX_FRAME);
            return;
        }
        if (r < 0) return;
        if (type != T_DATA) {
            send_error(sock, "unexpected frame 0x%02x during COPY_IN", type);
            return;
        }
        if (len == 0) break;
        if (fd >= 0 && !*failure && write_full(fd, buf, len) < 0)
            snprintf(failure, sizeof failure, "write %s: %s", path, strerror(errno));
    }
    if (fd >= 0 && !*failure && fchmod(fd, mode & 07777) < 0) /* the mode as asked, whatever the umask */
        snprintf(failure, sizeof failure, "chmod %s: %s", path, strerror(errno));
    if (fd >= 0 && close(fd) < 0 && !*failure) snprintf(failure, sizeof failure, "close %s: %s", path, strerror(errno));
    if (*failure) send_error(sock, "%s", failure);
    else send_frame(sock, T_OK, NULL, 0);
}

static void serve_copy_out(int sock, struct cursor *c, uint8_t *buf) {
    char *path;
    if (cur_str(c, &path) < 0 || c->left != 0) {
        send_error(sock, "bad COPY_OUT request");
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        send_error(sock, "open %s: %s", path, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        send_error(sock, "%s: not a regular file", path);
        return;
    }
    for (;;) {
        ssize_t r = read(fd, buf, CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            send_error(sock, "read %s: %s", path, strerror(errno));
            return;
        }
        if (r == 0) break;
        if (send_frame(sock, T_DATA, buf, (uint32_t)r) < 0) return;
    }
    uint8_t m[4];
    put_u32(m, st.st_mode & 07777);
    send_frame(sock, T_OK, m, 4);
}

/* ---- connections ---- */

static void serve(int sock) {
    uint8_t *buf = malloc(MAX_FRAME);
    int type;
    uint32_t len;
    int r = buf ? read_frame(sock, &type, buf, &len) : -1;
    if (r == -2) {
        send_error(sock, "frame of %u bytes: more than %u", len, MAX_FRAME);
        return;
    }
    if (r < 0) return;
    struct cursor c = {buf, len};
    switch (type) {
    case T_EXEC:
        serve_exec(sock, &c);
        break;
    case T_COPY_IN:
        /* the request's fields are copied out before buf is reused for data frames */
        {
            uint8_t *req = malloc(len ? len : 1);
            memcpy(req, buf, len);
            struct cursor rc = {req, len};
            serve_copy_in(sock, &rc, buf);
        }
        break;
    case T_COPY_OUT:
        serve_copy_out(sock, &c, buf);
        break;
    case T_PING:
        send_frame(sock, T_OK, VERSION, sizeof VERSION - 1);
        break;
    case T_POWEROFF:
        sync();
        send_frame(sock, T_OK, NULL, 0);
        if (pid1) {
            reboot(RB_POWER_OFF);
        } else {
            kill(getppid(), SIGTERM); /* the listener stops, as a VM would */
        }
        break;
    default:
        send_error(sock, "unknown request 0x%02x (%u bytes)", type, len);
    }
}

static void reap(int sig) {
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static void stop(int sig) {
    (void)sig;
    stopping = 1;
}

static void listen_loop(int lsock, const char *unix_path) {
    struct sigaction sa = {0};
    sa.sa_handler = reap;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = stop;
    sa.sa_flags = 0; /* accept returns EINTR, and the loop ends */
    if (!pid1) sigaction(SIGTERM, &sa, NULL);
    while (!stopping) {
        int s = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0) {
            if (errno != EINTR && errno != ECONNABORTED) say("accept: %s", strerror(errno));
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGCHLD, SIG_DFL); /* this process waits for its own command */
            signal(SIGTERM, SIG_DFL);
            close(lsock);
            serve(s);
            _exit(0);
        }
        if (pid < 0) say("fork: %s", strerror(errno));
        close(s);
    }
    if (unix_path) unlink(unix_path);
}

/* ---- PID 1 ---- */

static void mount_fs(const char *src, const char *dir, const char *type, const char *opts) {
    mkdir(dir, 0755);
    if (mount(src, dir, type, MS_NOSUID, opts) < 0 && errno != EBUSY) say("mount %s: %s", dir, strerror(errno));
}

/* /jvmm/modules names one module file a line, in an order where each comes after those it needs. */
static void load_modules(void) {
    FILE *f = fopen("/jvmm/modules", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!*line) continue;
        int fd = open(line, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST))
            say("module %s: %s", line, strerror(errno));
        if (fd >= 0) close(fd);
    }
    fclose(f);
}

static int if_up(int s, const char *name) {
    struct ifreq r = {0};
    strncpy(r.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &r) < 0) return -1;
    r.ifr_flags |= IFF_UP | IFF_RUNNING;
    return ioctl(s, SIOCSIFFLAGS, &r);
}

static int set_addr(int s, const char *name, unsigned long req, const char *text) {
    struct ifreq r = {0};
    strncpy(r.ifr_name, name, IFNAMSIZ - 1);
    struct sockaddr_in *a = (struct sockaddr_in *)&r.ifr_addr;
    a->sin_family = AF_INET;
    if (inet_pton(AF_INET, text, &a->sin_addr) != 1) return -1;
    return ioctl(s, req, &r);
}

/* /jvmm/net holds "IFNAME ADDRESS NETMASK GATEWAY": a static setup, as user-mode networking's DHCP would give. */
static void setup_network(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return;
    if_up(s, "lo");
    FILE *f = fopen("/jvmm/net", "r");
    char ifname[IFNAMSIZ], addr[64], mask[64], gw[64];
    if (f && fscanf(f, "%15s %63s %63s %63s", ifname, addr, mask, gw) == 4) {
        if (set_addr(s, ifname, SIOCSIFADDR, addr) < 0 || set_addr(s, ifname, SIOCSIFNETMASK, mask) < 0 ||
            if_up(s, ifname) < 0)
            say("network %s: %s", ifname, strerror(errno));
        struct rtentry rt = {0};
        struct sockaddr_in *d = (struct sockaddr_in *)&rt.rt_dst, *g = (struct sockaddr_in *)&rt.rt_gateway,
                           *m = (struct sockaddr_in *)&rt.rt_genmask;
        d->sin_family = g->sin_family = m->sin_family = AF_INET;
        inet_pton(AF_INET, gw, &g->sin_addr);
        rt.rt_flags = RTF_UP | RTF_GATEWAY;
        if (ioctl(s, SIOCADDRT, &rt) < 0) say("default route via %s: %s", gw, strerror(errno));
    }
    if (f) fclose(f);
    close(s);
}

static void init_system(void) {
    mount_fs("devtmpfs", "/dev", "devtmpfs", NULL);
    mount_fs("proc", "/proc", "proc", NULL);
    mount_fs("sysfs", "/sys", "sysfs", NULL);
    mount_fs("tmpfs", "/tmp", "tmpfs", "mode=1777");
    mount_fs("tmpfs", "/run", "tmpfs", "mode=0755");
    mkdir("/root", 0700);
    clearenv();
    setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
    setenv("HOME", "/root", 1);
    sethostname("jvmm", 4);
    load_modules();
    setup_network();
}

int main(int argc, char **argv) {
    const char *unix_path = NULL;
    unsigned port = DEFAULT_PORT;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen-unix") && i + 1 < argc) unix_path = argv[++i];
        else if (!strcmp(argv[i], "--listen-vsock") && i + 1 < argc) port = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (getpid() != 1) {
            fprintf(stderr, "usage: jvmm-agent [--listen-unix PATH | --listen-vsock PORT]\n");
            return 2;
        }
    }
    pid1 = getpid() == 1;
    signal(SIGPIPE, SIG_IGN); /* a vanished host is an error from write, not the agent's death */
    if (pid1) init_system();
    int lsock;
    if (unix_path) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (strlen(unix_path) >= sizeof a.sun_path) {
            say("socket path too long: %s", unix_path);
            return 2;
        }
        strcpy(a.sun_path, unix_path);
        lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (lsock < 0 || bind(lsock, (struct sockaddr *)&a, sizeof a) < 0 || listen(lsock, 64) < 0) {
            say("listen on %s: %s", unix_path, strerror(errno));
            return 1;
        }
    } else {
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
        lsock = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (lsock < 0 || bind(lsock, (struct sockaddr *)&a, sizeof a) < 0 || listen(lsock, 64) < 0) {
            say("listen on vsock port %u: %s", port, strerror(errno));
            if (pid1) { /* nothing can reach this guest: stop it rather than leave it running */
                sync();
                reboot(RB_POWER_OFF);
            }
            return 1;
        }
    }
    if (unix_path) say("listening on %s", unix_path);
    else say("listening on vsock port %u", port);
    listen_loop(lsock, unix_path);
    return 0;
}
