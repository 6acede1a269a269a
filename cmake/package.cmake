# Installation layout and the Debian package (`make deb`: CPack's DEB
# generator on the release build). docs/operations.md describes what the
# package installs and what its maintainer scripts (deploy/debian/) do.
#
#   /usr/sbin/             mgimapd mgsmtpd mgadm mgqueue mgsendmail
#   /usr/lib/mailgenic/    mgauthd (started by mgimapd, never by hand)
#   /usr/lib/systemd/system/  mgimapd.service mgsmtpd.service
#   /etc/mailgenic/        mailgenic.conf (conffile)
#   /usr/share/man/        one page per program, mailgenic.conf(5)
#   /usr/share/doc/mailgenic/  the user documentation, examples/

set(MG_DEPLOY_DIR ${CMAKE_SOURCE_DIR}/deploy)

install(TARGETS mgimapd mgsmtpd mgadm mgqueue mgsendmail RUNTIME DESTINATION sbin)
install(TARGETS mgauthd RUNTIME DESTINATION lib/mailgenic)
install(FILES ${MG_DEPLOY_DIR}/mgimapd.service ${MG_DEPLOY_DIR}/mgsmtpd.service
        DESTINATION lib/systemd/system)
install(FILES ${MG_DEPLOY_DIR}/mailgenic.conf DESTINATION /etc/mailgenic
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# Manual pages, compressed as Debian wants them (-n: reproducible).
set(MG_MAN_PAGES mgimapd.8 mgsmtpd.8 mgauthd.8 mgadm.8 mgqueue.8 mgsendmail.8 mailgenic.conf.5)
set(MG_MAN_OUTPUTS)
foreach(page ${MG_MAN_PAGES})
  set(out ${CMAKE_BINARY_DIR}/man/${page}.gz)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND gzip -9n -c ${MG_DEPLOY_DIR}/man/${page} > ${out}
    DEPENDS ${MG_DEPLOY_DIR}/man/${page} VERBATIM)
  list(APPEND MG_MAN_OUTPUTS ${out})
  string(REGEX MATCH "[0-9]$" section ${page})
  install(FILES ${out} DESTINATION share/man/man${section})
endforeach()
add_custom_target(mg_man ALL DEPENDS ${MG_MAN_OUTPUTS})

install(FILES README.md docs/operations.md docs/configuration.md docs/architecture.md
              docs/mgadm.md docs/auth-protocol.md docs/storage.md
        DESTINATION share/doc/mailgenic)
# Debian policy 12.5 and 12.7: the copyright file as it is, the changelog
# compressed (-n: reproducible). Its top entry must name this version.
set(MG_CHANGELOG_GZ ${CMAKE_BINARY_DIR}/changelog.Debian.gz)
add_custom_command(OUTPUT ${MG_CHANGELOG_GZ}
  COMMAND gzip -9n -c ${MG_DEPLOY_DIR}/debian/changelog > ${MG_CHANGELOG_GZ}
  DEPENDS ${MG_DEPLOY_DIR}/debian/changelog VERBATIM)
add_custom_target(mg_changelog ALL DEPENDS ${MG_CHANGELOG_GZ})
install(FILES ${MG_CHANGELOG_GZ} ${MG_DEPLOY_DIR}/debian/copyright DESTINATION share/doc/mailgenic)
install(PROGRAMS ${MG_DEPLOY_DIR}/certbot-deploy-hook DESTINATION share/doc/mailgenic/examples)
install(FILES ${MG_DEPLOY_DIR}/nftables.conf DESTINATION share/doc/mailgenic/examples)

# The package.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mailgenic)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Mailgenic maintainers <postmaster@mailgenic.test>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "mail server: SMTP, submission, IMAP, in two small hardened daemons")
# The synopsis is the summary above; this is the long description.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "Mailgenic is a mail system for people who run their own mail:
mgsmtpd (SMTP on 25, submission on 465, queue, relay) and mgimapd
(IMAP on 993, LMTP delivery, Maildir storage, the auth service).
TLS 1.2 or newer on every client port, no plaintext authentication,
never an open relay; each daemon runs as its own unprivileged user
under a sandboxed systemd unit.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# adduser: users and groups; openssl: the self-signed certificate;
# init-system-helpers: deb-systemd-helper and deb-systemd-invoke.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, openssl, init-system-helpers (>= 1.54)")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "db5.3-util, nftables")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "certbot")
# One MTA per host: /usr/sbin/sendmail is ours (an alternative, see postinst).
set(CPACK_DEBIAN_PACKAGE_PROVIDES "mail-transport-agent")
set(CPACK_DEBIAN_PACKAGE_CONFLICTS "mail-transport-agent")
set(CPACK_DEBIAN_PACKAGE_REPLACES "mail-transport-agent")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${MG_DEPLOY_DIR}/debian/conffiles ${MG_DEPLOY_DIR}/debian/postinst
    ${MG_DEPLOY_DIR}/debian/prerm ${MG_DEPLOY_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_OUTPUT_FILE_PREFIX ${CMAKE_BINARY_DIR}/deb)
include(CPack)
