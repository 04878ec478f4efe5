# shellcheck shell=sh
# /etc/profile.d/mtlsgw.sh: point login shells at the token stores the
# daemon uses (/etc/init.d/mtlsgw passes the same to it), so that the
# console tool (mtlsgw init, enroll, revoke...) opens the same token.
# A value already in the environment is left alone.
if [ -z "${SOFTHSM2_CONF-}" ]; then
	SOFTHSM2_CONF=$(uci -q get mtlsgw.service.softhsm_conf || echo /etc/mtlsgw/softhsm2.conf)
	if [ -f "$SOFTHSM2_CONF" ]; then
		export SOFTHSM2_CONF
	else
		unset SOFTHSM2_CONF
	fi
fi
if [ -z "${TPM2_PKCS11_STORE-}" ]; then
	TPM2_PKCS11_STORE=$(uci -q get mtlsgw.service.tpm2_pkcs11_store || echo /etc/mtlsgw/tpm2-pkcs11)
	export TPM2_PKCS11_STORE
fi
