# SPDX-License-Identifier: MPL-2.0
#
# The one place that defines the package version of awl and luci-app-awl: X.Y.Z (equal to
# Cargo.toml's version, which tests/packaging checks) and the release N of the packaging.
# Packages are versioned X.Y.Z-rN (.ipk, .apk, .deb). Read by openwrt/awl/Makefile,
# luci-app-awl/Makefile and cross/package/common.sh. Raise AWL_RELEASE for a packaging-only
# change, reset it to 1 with a new AWL_VERSION.
AWL_VERSION:=0.1.0
AWL_RELEASE:=1
