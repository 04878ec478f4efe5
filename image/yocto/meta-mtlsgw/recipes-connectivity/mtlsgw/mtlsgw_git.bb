SUMMARY = "Mutual-TLS gateway with its keys in a PKCS#11 token"
DESCRIPTION = "mtlsgw authenticates every management peer and every tunnel \
peer with mutual TLS (GnuTLS), keeps its keys and its CA key in a PKCS#11 \
token (a TPM through tpm2-pkcs11), and configures TUN interfaces, routes and \
an nftables table for trusted peers over netlink. The console tool mtlsgw \
enrolls and revokes peers."
SECTION = "net"
LICENSE = "ISC"
LIC_FILES_CHKSUM = "file://LICENSE;md5=f0629482338be4788dad755f7d0234c9"

# Source. The project has no public repository yet: set MTLSGW_GIT_URI to
# the clone or mirror to fetch, in local.conf or the distro config, e.g.
#   MTLSGW_GIT_URI = "git://git.example.org/mtlsgw.git;protocol=https"
# SRCREV is pinned (the first commit with the LICENSE file; bump it with
# each release); follow the branch head only from local.conf:
#   SRCREV:pn-mtlsgw = "${AUTOREV}"
# Without MTLSGW_GIT_URI the recipe is skipped with a message, so the layer
# still parses; a working tree builds with externalsrc (README.md).
MTLSGW_GIT_URI ??= ""
MTLSGW_GIT_BRANCH ??= "main"
MTLSGW_SRC_URI = "${MTLSGW_GIT_URI};branch=${MTLSGW_GIT_BRANCH};destsuffix=${BP}"
SRC_URI = "${@d.getVar('MTLSGW_SRC_URI') if d.getVar('MTLSGW_GIT_URI') else ''}"
SRCREV = "459772d7d851dffb8392433743d0b7a171e7f66c"
PV = "0.1.0+git"
# No S: the checkout lands in ${BP} below the unpack directory
# (destsuffix), the default S of every release in LAYERSERIES_COMPAT:
# ${WORKDIR}/${BP} in scarthgap, where git unpacks into WORKDIR;
# ${WORKDIR}/${BP} moved there from sources-unpack/ in styhead; and
# ${UNPACKDIR}/${BP} in the releases where S = "${WORKDIR}/git" is an error.

python () {
    if not d.getVar('MTLSGW_GIT_URI') and not d.getVar('EXTERNALSRC'):
        raise bb.parse.SkipRecipe("set MTLSGW_GIT_URI to the mtlsgw repository "
            "(e.g. \"git://git.example.org/mtlsgw.git;protocol=https\"), or build a "
            "working tree with externalsrc (meta-mtlsgw/README.md)")
}

inherit meson pkgconfig systemd useradd

# http-parser: meta-networking (http-parser_2.9.4.bb); it installs no .pc
# file, gateway/meson.build finds the library without one. GnuTLS must be
# built with p11-kit, which oe-core's recipe leaves out: the distro sets
#   PACKAGECONFIG:append:pn-gnutls = " p11-kit"
# (README.md); without it mtlsgwd stops at start and says so.
DEPENDS = "gnutls p11-kit libnl libnftnl libmnl json-c http-parser"

PACKAGECONFIG ??= "${@bb.utils.filter('DISTRO_FEATURES', 'systemd', d)}"
# tests: build the CUnit suites (the unit suite runs under qemu-user when
# MACHINE_FEATURES has qemu-usermode: meson test --suite unit).
PACKAGECONFIG[tests] = "-Dtests=true,-Dtests=false,cunit"
# tpm: token tests against swtpm + tpm2-pkcs11 as well; on the target the
# daemon then uses tpm2-pkcs11 (meta-security/meta-tpm) for its token.
PACKAGECONFIG[tpm] = "-Dtpm=enabled,-Dtpm=disabled,,tpm2-pkcs11 tpm2-abrmd"
PACKAGECONFIG[systemd] = "-Dsystemd=enabled,-Dsystemd=disabled,systemd"

EXTRA_OEMESON += "-Dfuzz=false -Ddaemon_user=mtlsgw"
# One executable: meson installs ${sbindir}/mtlsgw and ${sbindir}/mtlsgwd as
# a symbolic link to it (install_symlink, meson >= 0.61: kirkstone has
# 0.61.3); the name it is started by picks the daemon. For a flash-sized
# image add "-Dimage=true -Db_lto=true" (docs/performance.md, "Size").

# The unit only exists with PACKAGECONFIG systemd (meson installs it then).
SYSTEMD_SERVICE:${PN} = "${@bb.utils.contains('PACKAGECONFIG', 'systemd', 'mtlsgwd.service', '', d)}"
# The token and the CA must exist first (mtlsgw init): not started at boot
# until the image or the administrator enables it.
SYSTEMD_AUTO_ENABLE:${PN} = "disable"

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --user-group --no-create-home \
    --home-dir /nonexistent --shell ${base_sbindir}/nologin mtlsgw"

# The default config: what mtlsgwd.conf(5) documents as defaults, no
# listener until the administrator sets one. A conffile: an upgrade keeps
# the administrator's version.
do_install:append() {
    install -d -m 0755 ${D}${sysconfdir}/mtlsgw
    cat >${D}${sysconfdir}/mtlsgw/mtlsgwd.conf <<'EOF'
# /etc/mtlsgw/mtlsgwd.conf: see mtlsgwd.conf(5). mtlsgwd --check-config
# reports every error in it. No listener until one is set below.

[token]
uri = pkcs11:token=mtlsgw
pin-file = /etc/mtlsgw/pin

[pki]
dir = /etc/mtlsgw/pki

[daemon]
user = mtlsgw

# HTTPS/JSON management API, e.g. on the LAN address:
#[management]
#listen = 192.0.2.1:8443
EOF
    chmod 0644 ${D}${sysconfdir}/mtlsgw/mtlsgwd.conf
}

CONFFILES:${PN} = "${sysconfdir}/mtlsgw/mtlsgwd.conf"

# sysusers.d/mtlsgw.conf comes with the systemd unit; harmless next to the
# user the useradd class creates, and it recreates it on a factory reset.
FILES:${PN} += "${sysconfdir}/mtlsgw ${nonarch_libdir}/sysusers.d"

# The kernel side: TUN, nftables, ctnetlink (conntrack flush on revocation).
# Recommends, as they may be built into the kernel.
RRECOMMENDS:${PN} += "kernel-module-tun kernel-module-nf-tables \
    kernel-module-nfnetlink kernel-module-nf-conntrack-netlink"
