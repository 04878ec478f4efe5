SUMMARY = "Mutual-TLS gateway with its keys in a PKCS#11 token"
DESCRIPTION = "mtlsgw authenticates every management peer and every tunnel \
peer with mutual TLS (GnuTLS), keeps its keys and its CA key in a PKCS#11 \
token (a TPM through tpm2-pkcs11), and configures TUN interfaces, routes and \
an nftables table for trusted peers over netlink. The console tool mtlsgw \
enrolls and revokes peers."
SECTION = "net"
LICENSE = "ISC"
# Until the tree carries a LICENSE file, point at the common ISC text.
LIC_FILES_CHKSUM = "file://${COREBASE}/meta/files/common-licenses/ISC;md5=f3b90e78ea0cffb20bf5cca7947a896d"

# Set the repository and pin SRCREV for a release build; for a local tree
# use externalsrc (see README.md).
SRC_URI = "git://git.example.invalid/mtlsgw.git;protocol=https;branch=main"
SRCREV = "${AUTOREV}"
PV = "0.1.0+git${SRCPV}"
S = "${WORKDIR}/git"

inherit meson pkgconfig systemd useradd

# http-parser: no recipe in oe-core or meta-oe that we know of; a layer in
# the build must provide one (headers and libhttp_parser.so; gateway/
# meson.build finds it with or without a .pc file).
DEPENDS = "gnutls p11-kit libnl libnftnl libmnl json-c http-parser"

PACKAGECONFIG ??= "${@bb.utils.filter('DISTRO_FEATURES', 'systemd', d)}"
# tests: build the CUnit suites (the unit suite runs under qemu-user when
# MACHINE_FEATURES has qemu-usermode: meson test --suite unit).
PACKAGECONFIG[tests] = "-Dtests=true,-Dtests=false,cunit"
# tpm: token tests against swtpm + tpm2-pkcs11 as well; on the target the
# daemon then uses tpm2-pkcs11 (meta-security/meta-tpm) for its token.
PACKAGECONFIG[tpm] = "-Dtpm=enabled,-Dtpm=disabled,,tpm2-pkcs11 tpm2-abrmd"
PACKAGECONFIG[systemd] = "-Dsystemd=enabled,-Dsystemd=disabled,systemd"

EXTRA_OEMESON = "-Dfuzz=false -Ddaemon_user=mtlsgw"

SYSTEMD_SERVICE:${PN} = "mtlsgwd.service"
# The token and the CA must exist first (mtlsgw init): not started at boot
# until the image or the administrator enables it.
SYSTEMD_AUTO_ENABLE:${PN} = "disable"

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --user-group --no-create-home \
    --home-dir /nonexistent --shell ${base_sbindir}/nologin mtlsgw"

do_install:append() {
    # config, PIN file and pki/ (made by mtlsgw init) live here
    install -d -m 0755 ${D}${sysconfdir}/mtlsgw
}

# sysusers.d/mtlsgw.conf comes with the systemd unit; harmless next to the
# user the useradd class creates, and it recreates it on a factory reset.
FILES:${PN} += "${sysconfdir}/mtlsgw ${nonarch_libdir}/sysusers.d"

# The kernel side: TUN, nftables, ctnetlink (conntrack flush on revocation).
# Recommends, as they may be built into the kernel.
RRECOMMENDS:${PN} += "kernel-module-tun kernel-module-nf-tables \
    kernel-module-nfnetlink kernel-module-nf-conntrack-netlink"
