#!/bin/sh
# apt-suite.sh add SUITE | remove SUITE — make one more Debian suite installable, only on request.
#
# The image is Debian trixie; PostgreSQL 18's full client (TLS, lz4, zstd) is in forky. The suite's
# mirror is the one the image already uses (its first `.../debian` URI), so a build behind a local
# mirror stays behind it. Pin-Priority 100 keeps every package on trixie unless its version is
# asked for explicitly (`libpq5=18.6-3`), and `remove` takes the suite out of the final image.
#
# APT_CHECK_VALID_UNTIL=no accepts the suite's Release file after its Valid-Until date: for mirrors
# that serve a frozen copy of the archive (signatures are still checked, and the exact version pins
# mean a replayed old index can only fail the build, never change what is installed).
set -eu
action="$1"; suite="$2"
list="/etc/apt/sources.list.d/$suite.sources"
prefs="/etc/apt/preferences.d/$suite"
case "$action" in
  add)
    uri=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | awk '
        /^[[:space:]]*#/ {next}
        /^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}
        /^deb[[:space:]]/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) {print $i; exit}}')
    [ -n "$uri" ] || { echo "apt-suite.sh: no Debian archive URI in the image's apt sources" >&2; exit 1; }
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\nCheck-Valid-Until: %s\n' \
      "$uri" "$suite" "${APT_CHECK_VALID_UNTIL:-yes}" > "$list"
    printf 'Package: *\nPin: release n=%s\nPin-Priority: 100\n' "$suite" > "$prefs"
    ;;
  remove)
    rm -f "$list" "$prefs"
    ;;
  *) echo "usage: $0 add|remove SUITE" >&2; exit 2 ;;
esac
