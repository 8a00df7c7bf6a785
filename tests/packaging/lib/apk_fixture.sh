# shellcheck shell=bash disable=SC2034
# apk_fixture DIR: a small file tree that exercises the ADB writer: nested and empty
# directories, modes, an empty file, a symlink, a file over 64 KiB, identical files (shared
# data), a conffile with its metadata. Deterministic: the recorded vectors were made from it.
apk_fixture() {
    local d=$1
    mkdir -p "$d/etc/config" "$d/usr/sbin" "$d/usr/share/empty" "$d/lib/apk/packages" "$d/www/a/b"
    printf "config t 'main'\n\toption x '1'\n" >"$d/etc/config/t"
    printf '#!/bin/sh\necho hi\n' >"$d/usr/sbin/t"
    : >"$d/usr/sbin/empty"
    ln -s t "$d/usr/sbin/t-link"
    python3 -c "import sys; sys.stdout.buffer.write(bytes(range(256)) * 300)" >"$d/www/a/b/big.bin"
    echo same >"$d/www/a/one"; echo same >"$d/www/a/two"
    echo /etc/config/t >"$d/lib/apk/packages/t.conffiles"
    echo "/etc/config/t $(sha256sum "$d/etc/config/t" | cut -d' ' -f1)" >"$d/lib/apk/packages/t.conffiles_static"
    chmod 0755 "$d/usr/sbin/t"; chmod 0644 "$d/etc/config/t" "$d/usr/sbin/empty" "$d/www/a/b/big.bin" "$d/www/a/one" "$d/www/a/two" "$d"/lib/apk/packages/*
    chmod 0700 "$d/usr/share/empty"
    find "$d" -type d ! -path "$d/usr/share/empty" -exec chmod 0755 {} +
    printf '#!/bin/sh\necho post\n' >"$d.post-install"
}
# APK_FIXTURE_ARGS: the mkpkg options for the fixture in DIR, written to OUT.
apk_fixture_args() { # DIR OUT
    APK_FIXTURE_ARGS=(mkpkg --info name:t --info version:1.2.3-r4 --info "description:fixture package"
        --info arch:noarch --info license:MIT --info origin:feeds/t/t --info url:https://example.org
        --info "maintainer:t <t@example.org>" --info "depends:libc kmod-tun libc"
        --script "post-install:$1.post-install" --files "$1" --output "$2")
}
