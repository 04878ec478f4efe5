/* fsutil: state files replace only regular files; user outputs are written in
 * place to devices, FIFOs and sockets, and through a link only when asked. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cunit-main.h"
#include "fsutil.h"

static char dir[] = "/tmp/mtlsgw-fsutil-XXXXXX";
static int n_path;

/* A fresh name in the temp dir. */
static const char *fresh(const char *what)
{
    static char buf[8][256];
    char *p = buf[n_path % 8];

    snprintf(p, sizeof(buf[0]), "%s/%s-%d", dir, what, n_path++);
    return p;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

/* The file's text, or "" when it cannot be read. */
static const char *text_of(const char *path)
{
    static char buf[4096];
    char *t = NULL;
    size_t len = 0;

    buf[0] = '\0';
    if (fs_read_file(path, sizeof(buf) - 1, &t, &len) == 0)
        memcpy(buf, t, len + 1);
    free(t);
    return buf;
}

static mode_t type_of(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0;
}

/* A private /dev/null: c 1 3 in the temp dir (root only). */
static bool make_null(const char *path)
{
    if (geteuid() != 0) {
        fprintf(stderr, "skipped: mknod needs root\n");
        return false;
    }
    CU_ASSERT_EQUAL_FATAL(mknod(path, S_IFCHR | 0666, makedev(1, 3)), 0);
    return true;
}

/* ---- state files ----------------------------------------------------------- */

static void test_state_new_and_regular(void)
{
    const char *p = fresh("state");
    struct stat a, b;

    EXPECT_INT(fs_write_atomic(p, "one\n", 4, 0640), 0);
    EXPECT_STR(text_of(p), "one\n");
    CU_ASSERT_EQUAL_FATAL(stat(p, &a), 0);
    EXPECT_INT(a.st_mode & 07777, 0640);
    EXPECT_INT(fs_write_atomic(p, "two\n", 4, 0640), 0);
    EXPECT_STR(text_of(p), "two\n");
    CU_ASSERT_EQUAL_FATAL(stat(p, &b), 0);
    /* Replaced, not rewritten: a reader holding the old file keeps it whole. */
    CU_ASSERT_NOT_EQUAL(a.st_ino, b.st_ino);
}

static void test_state_symlink_refused(void)
{
    const char *target = fresh("target"), *link = fresh("link");
    const char *nowhere = fresh("nowhere"), *dangling = fresh("dangling");

    put(target, "theirs\n");
    CU_ASSERT_EQUAL_FATAL(symlink(target, link), 0);
    EXPECT_INT(fs_state_check(link), -ELOOP);
    EXPECT_INT(fs_state_check(target), 0);
    EXPECT_INT(fs_state_check(nowhere), 0);
    EXPECT_INT(fs_write_atomic(link, "ours\n", 5, 0644), -ELOOP);
    EXPECT_INT(type_of(link), S_IFLNK);
    EXPECT_STR(text_of(target), "theirs\n");
    EXPECT_CONTAINS(fs_strerror(-ELOOP), "symbolic link");
    /* A dangling link is refused too: it would create a file elsewhere. */
    CU_ASSERT_EQUAL_FATAL(symlink(nowhere, dangling), 0);
    EXPECT_INT(fs_write_atomic(dangling, "ours\n", 5, 0644), -ELOOP);
    EXPECT_INT(type_of(nowhere), 0);
    EXPECT_INT(type_of(dangling), S_IFLNK);
}

static void test_state_fifo_device_dir_refused(void)
{
    const char *fifo = fresh("fifo"), *dev = fresh("null"), *d = fresh("dir");

    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    EXPECT_INT(fs_state_check(fifo), -EEXIST);
    EXPECT_INT(fs_write_atomic(fifo, "x", 1, 0644), -EEXIST);
    EXPECT_INT(type_of(fifo), S_IFIFO);
    EXPECT_CONTAINS(fs_strerror(-EEXIST), "not a regular file");
    CU_ASSERT_EQUAL_FATAL(mkdir(d, 0700), 0);
    EXPECT_INT(fs_write_atomic(d, "x", 1, 0644), -EISDIR);
    if (make_null(dev)) {
        EXPECT_INT(fs_write_atomic(dev, "x", 1, 0644), -EEXIST);
        EXPECT_INT(type_of(dev), S_IFCHR);
    }
}

static void test_state_append_and_lock(void)
{
    const char *log = fresh("audit"), *fifo = fresh("fifo"), *link = fresh("link");
    char sub[300], lock[320];
    int fd = -1;

    EXPECT_INT(fs_append_line(log, "a", 0640), 0);
    EXPECT_INT(fs_append_line(log, "b", 0640), 0);
    EXPECT_STR(text_of(log), "a\nb\n");
    CU_ASSERT_EQUAL_FATAL(symlink(log, link), 0);
    EXPECT_INT(fs_append_line(link, "c", 0640), -ELOOP);
    EXPECT_STR(text_of(log), "a\nb\n");
    /* A FIFO without a reader neither blocks nor is written. */
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    EXPECT_INT(fs_append_line(fifo, "c", 0640), -EEXIST);

    snprintf(sub, sizeof(sub), "%s", fresh("pki"));
    snprintf(lock, sizeof(lock), "%s/lock", sub);
    CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0700), 0);
    EXPECT_INT(fs_lock_dir(sub, &fd), 0);
    if (fd >= 0)
        close(fd);
    unlink(lock);
    CU_ASSERT_EQUAL_FATAL(symlink(log, lock), 0);
    fd = -1;
    EXPECT_INT(fs_lock_dir(sub, &fd), -ELOOP);
    EXPECT_INT(fd, -1);
}

/* The lock looks at the dir's entries before any work is done under it:
 * a link, FIFO or device among them refuses it, naming the entry;
 * fs_lock_dir_only() (restore) does not look. */
static void test_state_lock_looks_at_entries(void)
{
    char sub[300], reg[320], node[320];
    int fd = -1;

    snprintf(sub, sizeof(sub), "%s", fresh("pki"));
    snprintf(reg, sizeof(reg), "%s/registry.json", sub);
    snprintf(node, sizeof(node), "%s/crl.pem", sub);
    CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0700), 0);
    put(reg, "{}");
    snprintf(node, sizeof(node), "%s/issued", sub);
    CU_ASSERT_EQUAL_FATAL(mkdir(node, 0700), 0); /* a subdir is fine */
    snprintf(node, sizeof(node), "%s/crl.pem", sub);
    EXPECT_INT(fs_lock_dir(sub, &fd), 0);
    close(fd);

    CU_ASSERT_EQUAL_FATAL(symlink(reg, node), 0);
    fd = -1;
    EXPECT_INT(fs_lock_dir(sub, &fd), FS_ERR_STATE_NODE);
    EXPECT_INT(fd, -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(fs_strerror(FS_ERR_STATE_NODE),
                                  "crl.pem in it is a symbolic link"));
    EXPECT_INT(fs_lock_dir_only(sub, &fd), 0);
    if (fd >= 0)
        close(fd);
    unlink(node);

    CU_ASSERT_EQUAL_FATAL(mkfifo(node, 0600), 0);
    fd = -1;
    EXPECT_INT(fs_lock_dir(sub, &fd), FS_ERR_STATE_NODE);
    CU_ASSERT_PTR_NOT_NULL(strstr(fs_strerror(FS_ERR_STATE_NODE), "crl.pem in it is a FIFO"));
    unlink(node);
    fd = -1;
    EXPECT_INT(fs_lock_dir(sub, &fd), 0);
    if (fd >= 0)
        close(fd);
}

/* A state file is read only when it is a regular file: a FIFO with no
 * writer neither blocks nor is read; a user's input (fs_read_input) is
 * whatever opens. */
static void test_state_read_refuses_nodes(void)
{
    const char *fifo = fresh("fifo"), *nul = fresh("null"), *d = fresh("dir");
    char *t = NULL;
    size_t len = 0;

    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    EXPECT_INT(fs_read_file(fifo, 4096, &t, &len), -EEXIST);
    CU_ASSERT_EQUAL_FATAL(mkdir(d, 0700), 0);
    EXPECT_INT(fs_read_file(d, 4096, &t, &len), -EISDIR);
    if (make_null(nul)) {
        EXPECT_INT(fs_read_file(nul, 4096, &t, &len), -EEXIST);
        EXPECT_INT(fs_read_input(nul, 4096, &t, &len), 0); /* /dev/null: empty */
        EXPECT_INT((int)len, 0);
        free(t);
    }
}

/* ---- outputs ----------------------------------------------------------------- */

static void test_out_new_and_regular(void)
{
    const char *p = fresh("out");
    struct stat a, b;

    EXPECT_INT(fs_write_out(p, "one\n", 4, 0600, 0), 0);
    EXPECT_STR(text_of(p), "one\n");
    CU_ASSERT_EQUAL_FATAL(stat(p, &a), 0);
    EXPECT_INT(a.st_mode & 07777, 0600);
    EXPECT_INT(fs_write_out(p, "two\n", 4, 0600, 0), 0);
    EXPECT_STR(text_of(p), "two\n");
    CU_ASSERT_EQUAL_FATAL(stat(p, &b), 0);
    CU_ASSERT_NOT_EQUAL(a.st_ino, b.st_ino);
    /* A missing directory is reported, not created. */
    EXPECT_INT(fs_write_out("/nonexistent-mtlsgw/dir/file", "x", 1, 0644, 0), -ENOENT);
    EXPECT_INT(fs_write_out(dir, "x", 1, 0644, 0), -EISDIR);
}

static void test_out_device_in_place(void)
{
    const char *dev = fresh("null");

    if (!make_null(dev))
        return;
    EXPECT_INT(fs_write_out(dev, "csr\n", 4, 0644, 0), 0);
    EXPECT_INT(type_of(dev), S_IFCHR);
    EXPECT_INT(fs_write_out(dev, "csr\n", 4, 0644, FS_OUT_FOLLOW), 0);
    EXPECT_INT(type_of(dev), S_IFCHR);
}

static void test_out_block_device_refused(void)
{
    const char *dev = fresh("blk");

    if (geteuid() != 0) {
        fprintf(stderr, "skipped: mknod needs root\n");
        return;
    }
    /* loop0: opened (or not, without the driver), never replaced. */
    CU_ASSERT_EQUAL_FATAL(mknod(dev, S_IFBLK | 0600, makedev(7, 0)), 0);
    CU_ASSERT(fs_write_out(dev, "x", 1, 0644, 0) < 0);
    EXPECT_INT(type_of(dev), S_IFBLK);
}

static void test_out_fifo_with_reader(void)
{
    const char *fifo = fresh("fifo");
    char buf[64] = "";
    ssize_t n;
    int rd;

    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    rd = open(fifo, O_RDONLY | O_NONBLOCK);
    CU_ASSERT_FATAL(rd >= 0);
    EXPECT_INT(fs_write_out(fifo, "through\n", 8, 0644, 0), 0);
    n = read(rd, buf, sizeof(buf) - 1);
    EXPECT_INT(n, 8);
    buf[n > 0 ? n : 0] = '\0';
    EXPECT_STR(buf, "through\n");
    close(rd);
    EXPECT_INT(type_of(fifo), S_IFIFO);
}

/* No reader yet: the write waits for one, as a shell's '>' does. */
static void test_out_fifo_waits_for_reader(void)
{
    const char *fifo = fresh("fifo");
    char buf[64] = "";
    ssize_t n;
    int rd, status = 0;
    pid_t pid;

    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0)
        _exit(fs_write_out(fifo, "late\n", 5, 0644, 0) == 0 ? 0 : 1);
    usleep(100 * 1000);
    rd = open(fifo, O_RDONLY);
    CU_ASSERT_FATAL(rd >= 0);
    n = read(rd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(rd);
    waitpid(pid, &status, 0);
    EXPECT_STR(buf, "late\n");
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_INT(type_of(fifo), S_IFIFO);
}

static void test_out_socket(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *path = fresh("sock");
    char buf[64] = "";
    ssize_t n;
    int ls, c;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    ls = socket(AF_UNIX, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(ls >= 0);
    CU_ASSERT_EQUAL_FATAL(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
    CU_ASSERT_EQUAL_FATAL(listen(ls, 1), 0);
    EXPECT_INT(fs_write_out(path, "sock\n", 5, 0644, 0), 0);
    c = accept(ls, NULL, NULL);
    CU_ASSERT_FATAL(c >= 0);
    n = read(c, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    EXPECT_STR(buf, "sock\n");
    close(c);
    close(ls);
    EXPECT_INT(type_of(path), S_IFSOCK);
}

static void test_out_symlink(void)
{
    const char *target = fresh("target"), *link = fresh("link"), *link2 = fresh("link2");
    const char *dangling = fresh("dangling"), *made = fresh("made");
    char rel[300], got[300];
    ssize_t n;

    put(target, "theirs\n");
    CU_ASSERT_EQUAL_FATAL(symlink(target, link), 0);
    EXPECT_INT(fs_write_out(link, "ours\n", 5, 0644, 0), -ELOOP);
    EXPECT_STR(text_of(target), "theirs\n");
    EXPECT_INT(type_of(link), S_IFLNK);
    /* --force: the target changes, the link stays a link to it. */
    EXPECT_INT(fs_write_out(link, "ours\n", 5, 0644, FS_OUT_FOLLOW), 0);
    EXPECT_STR(text_of(target), "ours\n");
    EXPECT_INT(type_of(link), S_IFLNK);
    EXPECT_INT(type_of(target), S_IFREG);
    n = readlink(link, got, sizeof(got) - 1);
    got[n > 0 ? n : 0] = '\0';
    EXPECT_STR(got, target);
    /* A chain with a relative hop, resolved against the link's directory. */
    snprintf(rel, sizeof(rel), "%s", strrchr(link, '/') + 1);
    CU_ASSERT_EQUAL_FATAL(symlink(rel, link2), 0);
    EXPECT_INT(fs_write_out(link2, "again\n", 6, 0644, FS_OUT_FOLLOW), 0);
    EXPECT_STR(text_of(target), "again\n");
    EXPECT_INT(type_of(link2), S_IFLNK);
    EXPECT_INT(type_of(link), S_IFLNK);
    /* Dangling: the file it names is made. */
    CU_ASSERT_EQUAL_FATAL(symlink(made, dangling), 0);
    EXPECT_INT(fs_write_out(dangling, "new\n", 4, 0644, 0), -ELOOP);
    EXPECT_INT(type_of(made), 0);
    EXPECT_INT(fs_write_out(dangling, "new\n", 4, 0644, FS_OUT_FOLLOW), 0);
    EXPECT_STR(text_of(made), "new\n");
    EXPECT_INT(type_of(dangling), S_IFLNK);
}

static void test_out_symlink_to_fifo_and_device(void)
{
    const char *fifo = fresh("fifo"), *lf = fresh("lfifo"), *dev = fresh("null");
    const char *ld = fresh("lnull");
    char buf[16] = "";
    int rd;

    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    CU_ASSERT_EQUAL_FATAL(symlink(fifo, lf), 0);
    rd = open(fifo, O_RDONLY | O_NONBLOCK);
    CU_ASSERT_FATAL(rd >= 0);
    EXPECT_INT(fs_write_out(lf, "f\n", 2, 0644, FS_OUT_FOLLOW), 0);
    EXPECT_INT(read(rd, buf, sizeof(buf)), 2);
    close(rd);
    EXPECT_INT(type_of(fifo), S_IFIFO);
    EXPECT_INT(type_of(lf), S_IFLNK);
    if (!make_null(dev))
        return;
    CU_ASSERT_EQUAL_FATAL(symlink(dev, ld), 0);
    EXPECT_INT(fs_write_out(ld, "d\n", 2, 0644, 0), -ELOOP);
    EXPECT_INT(fs_write_out(ld, "d\n", 2, 0644, FS_OUT_FOLLOW), 0);
    EXPECT_INT(type_of(dev), S_IFCHR);
    EXPECT_INT(type_of(ld), S_IFLNK);
}

static void test_out_streams(void)
{
    int p[2], saved;
    char buf[32] = "";
    ssize_t n;

    EXPECT_INT(fs_out_fd("-"), STDOUT_FILENO);
    EXPECT_INT(fs_out_fd("/dev/stdout"), STDOUT_FILENO);
    EXPECT_INT(fs_out_fd("/dev/stderr"), STDERR_FILENO);
    EXPECT_INT(fs_out_fd("./-"), -1);
    EXPECT_INT(fs_out_fd("out.pem"), -1);
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    CU_ASSERT_FATAL(saved >= 0);
    dup2(p[1], STDOUT_FILENO);
    EXPECT_INT(fs_write_out("-", "dash\n", 5, 0644, 0), 0);
    EXPECT_INT(fs_write_out("/dev/stdout", "dev\n", 4, 0644, 0), 0);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(p[1]);
    n = read(p[0], buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(p[0]);
    EXPECT_STR(buf, "dash\ndev\n");
    EXPECT_INT(type_of("-"), 0); /* no file named "-" was made in the cwd */
}

/* ---- another user's names (fs.protected_* rules) ---------------------------- */

static struct stat node(mode_t mode, uid_t uid)
{
    struct stat st = {.st_mode = mode, .st_uid = uid};

    return st;
}

static void test_rule_follow(void)
{
    struct stat tmp = node(S_IFDIR | 01777, 0), own = node(S_IFDIR | 01777, 1000);
    struct stat grp = node(S_IFDIR | 01770, 0), closed = node(S_IFDIR | 01755, 0);
    struct stat open_ = node(S_IFDIR | 0777, 0);
    struct stat theirs = node(S_IFLNK | 0777, 1000), roots = node(S_IFLNK | 0777, 0);

    CU_ASSERT_FALSE(fs_out_may_follow(&theirs, &tmp, 0));  /* the attack */
    CU_ASSERT_TRUE(fs_out_may_follow(&roots, &tmp, 0));    /* the caller's own */
    CU_ASSERT_TRUE(fs_out_may_follow(&theirs, &tmp, 1000)); /* the same user's */
    CU_ASSERT_TRUE(fs_out_may_follow(&theirs, &own, 0));   /* the directory owner's */
    CU_ASSERT_FALSE(fs_out_may_follow(&roots, &own, 2000)); /* neither */
    CU_ASSERT_FALSE(fs_out_may_follow(&theirs, &grp, 0));  /* sticky, group-writable */
    CU_ASSERT_TRUE(fs_out_may_follow(&theirs, &closed, 0)); /* sticky, only root writes */
    CU_ASSERT_TRUE(fs_out_may_follow(&theirs, &open_, 0));  /* not sticky */
}

static void test_rule_write(void)
{
    struct stat tmp = node(S_IFDIR | 01777, 0), own = node(S_IFDIR | 01777, 1000);
    struct stat home = node(S_IFDIR | 0755, 1000);
    struct stat fifo = node(S_IFIFO | 0622, 1000), sock = node(S_IFSOCK | 0755, 1000);
    struct stat chr = node(S_IFCHR | 0666, 1000), reg = node(S_IFREG | 0644, 1000);
    struct stat root_fifo = node(S_IFIFO | 0600, 0), null = node(S_IFCHR | 0666, 0);
    struct stat zero = node(S_IFCHR | 0666, 0);

    null.st_rdev = makedev(1, 3);
    zero.st_rdev = makedev(1, 5);
    /* public output, another user's node in /tmp: refused */
    CU_ASSERT_FALSE(fs_out_may_write(&fifo, &tmp, 0, false));
    CU_ASSERT_FALSE(fs_out_may_write(&sock, &tmp, 0, false));
    CU_ASSERT_FALSE(fs_out_may_write(&chr, &tmp, 0, false));
    CU_ASSERT_TRUE(fs_out_may_write(&reg, &tmp, 0, false)); /* replaced, not written */
    CU_ASSERT_TRUE(fs_out_may_write(&fifo, &tmp, 1000, false));
    CU_ASSERT_TRUE(fs_out_may_write(&root_fifo, &tmp, 1000, false));
    CU_ASSERT_TRUE(fs_out_may_write(&fifo, &own, 0, false));
    CU_ASSERT_TRUE(fs_out_may_write(&fifo, &home, 0, false));
    /* private output: only the caller's node, or /dev/null */
    CU_ASSERT_FALSE(fs_out_may_write(&fifo, &home, 0, true));
    CU_ASSERT_FALSE(fs_out_may_write(&sock, &own, 0, true));
    CU_ASSERT_FALSE(fs_out_may_write(&root_fifo, &home, 1000, true));
    CU_ASSERT_FALSE(fs_out_may_write(&zero, &home, 1000, true));
    CU_ASSERT_TRUE(fs_out_may_write(&null, &home, 1000, true));
    CU_ASSERT_TRUE(fs_out_may_write(&fifo, &tmp, 1000, true));
    CU_ASSERT_TRUE(fs_out_may_write(&reg, &tmp, 0, true));
    EXPECT_CONTAINS(fs_strerror(FS_ERR_LINK_NOT_OURS), "another user");
    EXPECT_CONTAINS(fs_strerror(FS_ERR_NODE_NOT_OURS), "another user");
    EXPECT_CONTAINS(fs_strerror(FS_ERR_SECRET_NOT_OURS), "another user");
}

/* The rule applied by fs_write_out() on real names: needs root to give them
 * to another user. */
static void test_out_not_ours(void)
{
    char shared[300], fifo[320], lone[320], lnk[320], sock[320], target[320];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char buf[16];
    int rd, ls;

    /* as anyone: a private output to /dev/null and to one's own FIFO */
    EXPECT_INT(fs_write_out("/dev/null", "k", 1, 0600, FS_OUT_SECRET), 0);
    if (geteuid() != 0) {
        fprintf(stderr, "skipped: chown to another user needs root\n");
        return;
    }
    snprintf(shared, sizeof(shared), "%s", fresh("shared"));
    CU_ASSERT_EQUAL_FATAL(mkdir(shared, 0755), 0);
    CU_ASSERT_EQUAL_FATAL(chmod(shared, 01777), 0);
    snprintf(fifo, sizeof(fifo), "%s/fifo", shared);
    snprintf(lone, sizeof(lone), "%s/lone", shared);
    snprintf(lnk, sizeof(lnk), "%s/link", shared);
    snprintf(sock, sizeof(sock), "%s/sock", shared);
    snprintf(target, sizeof(target), "%s", fresh("target"));

    /* another user's FIFO with a reader: nothing reaches the reader */
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0622), 0);
    CU_ASSERT_EQUAL_FATAL(chown(fifo, 65534, 65534), 0);
    rd = open(fifo, O_RDONLY | O_NONBLOCK);
    CU_ASSERT_FATAL(rd >= 0);
    EXPECT_INT(fs_write_out(fifo, "x\n", 2, 0644, 0), FS_ERR_NODE_NOT_OURS);
    EXPECT_INT(fs_write_out(fifo, "x\n", 2, 0600, FS_OUT_SECRET), FS_ERR_SECRET_NOT_OURS);
    EXPECT_INT(read(rd, buf, sizeof(buf)), 0);
    close(rd);
    /* ... and without one: refused at once, not waited on */
    CU_ASSERT_EQUAL_FATAL(mkfifo(lone, 0622), 0);
    CU_ASSERT_EQUAL_FATAL(chown(lone, 65534, 65534), 0);
    EXPECT_INT(fs_write_out(lone, "x\n", 2, 0644, 0), FS_ERR_NODE_NOT_OURS);
    /* given to root, the same FIFO is written */
    CU_ASSERT_EQUAL_FATAL(chown(fifo, 0, 0), 0);
    rd = open(fifo, O_RDONLY | O_NONBLOCK);
    CU_ASSERT_FATAL(rd >= 0);
    EXPECT_INT(fs_write_out(fifo, "k\n", 2, 0600, FS_OUT_SECRET), 0);
    EXPECT_INT(read(rd, buf, sizeof(buf)), 2);
    close(rd);

    /* another user's socket: not connected to */
    CU_ASSERT_FATAL(strlen(sock) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    ls = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CU_ASSERT_FATAL(ls >= 0);
    CU_ASSERT_EQUAL_FATAL(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
    CU_ASSERT_EQUAL_FATAL(listen(ls, 1), 0);
    CU_ASSERT_EQUAL_FATAL(lchown(sock, 65534, 65534), 0);
    EXPECT_INT(fs_write_out(sock, "x\n", 2, 0600, FS_OUT_SECRET), FS_ERR_SECRET_NOT_OURS);
    EXPECT_INT(fs_write_out(sock, "x\n", 2, 0644, 0), FS_ERR_NODE_NOT_OURS);
    EXPECT_INT(accept(ls, NULL, NULL), -1);
    close(ls);

    /* another user's link to a root file, with FS_OUT_FOLLOW: not followed */
    put(target, "root only\n");
    CU_ASSERT_EQUAL_FATAL(symlink(target, lnk), 0);
    CU_ASSERT_EQUAL_FATAL(lchown(lnk, 65534, 65534), 0);
    EXPECT_INT(fs_write_out(lnk, "x\n", 2, 0644, FS_OUT_FOLLOW), FS_ERR_LINK_NOT_OURS);
    EXPECT_STR(text_of(target), "root only\n");
    EXPECT_INT(type_of(lnk), S_IFLNK);
    /* the caller's own link there is followed */
    CU_ASSERT_EQUAL_FATAL(lchown(lnk, 0, 0), 0);
    EXPECT_INT(fs_write_out(lnk, "ours\n", 5, 0644, FS_OUT_FOLLOW), 0);
    EXPECT_STR(text_of(target), "ours\n");
}

static const struct cu_test tests[] = {
    {"state: new and regular files replaced atomically", test_state_new_and_regular},
    {"state: a symbolic link is refused", test_state_symlink_refused},
    {"state: FIFO, device, directory refused", test_state_fifo_device_dir_refused},
    {"state: audit append and the lock refuse links and FIFOs", test_state_append_and_lock},
    {"state: the lock looks at the dir's entries first", test_state_lock_looks_at_entries},
    {"state: reads refuse FIFOs, devices, dirs", test_state_read_refuses_nodes},
    {"out: new and regular files replaced atomically", test_out_new_and_regular},
    {"out: a character device is written in place", test_out_device_in_place},
    {"out: a block device is refused", test_out_block_device_refused},
    {"out: a FIFO is written to its reader", test_out_fifo_with_reader},
    {"out: a FIFO waits for its reader", test_out_fifo_waits_for_reader},
    {"out: a socket is connected to", test_out_socket},
    {"out: a symlink only with FS_OUT_FOLLOW, and it stays", test_out_symlink},
    {"out: links to a FIFO and a device", test_out_symlink_to_fifo_and_device},
    {"out: -, /dev/stdout, /dev/stderr", test_out_streams},
    {"out: whose link is followed (protected_symlinks)", test_rule_follow},
    {"out: whose FIFO, socket, device is written", test_rule_write},
    {"out: another user's FIFO, socket, link in a sticky dir", test_out_not_ours},
};

int main(void)
{
    int rc;
    char cmd[300];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    rc = cu_run("fsutil", tests, sizeof(tests) / sizeof(tests[0]));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return rc;
}
