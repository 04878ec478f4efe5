/*
 * qr.h: QR codes of short texts (the `mtlsgw join` line of an invite), made
 * here with libqrencode, never by a remote service: as SVG for the
 * management page and as text for a terminal (docs/web.md).
 */
#ifndef MTLSGW_QR_H
#define MTLSGW_QR_H

/*
 * An SVG document of text's QR code (error correction M, a 4-module quiet
 * zone, one path of dark modules on a white square). *out is malloc'ed.
 * -EINVAL when text is empty or too long for a QR code, -ENOMEM.
 */
int qr_svg(const char *text, char **out);

/*
 * The same code as lines of UTF-8 half blocks, two module rows per line,
 * for a dark-background terminal (light modules drawn, as `qrencode -t
 * UTF8` does). *out is malloc'ed, each line ends in '\n'.
 */
int qr_text(const char *text, char **out);

#endif
