# mtlsgw keeps its keys in a PKCS#11 token and loads it through p11-kit:
# GnuTLS must be built with p11-kit support.
PACKAGECONFIG:append = " p11-kit"
