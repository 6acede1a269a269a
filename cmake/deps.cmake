# External libraries, all from Debian's packages (deploy/install-deps.sh).
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(OPENSSL REQUIRED IMPORTED_TARGET libssl libcrypto)
pkg_check_modules(CARES REQUIRED IMPORTED_TARGET libcares)
pkg_check_modules(XCRYPT REQUIRED IMPORTED_TARGET libxcrypt)
pkg_check_modules(CMOCKA IMPORTED_TARGET cmocka)

# Berkeley DB 5.3 ships no pkg-config file.
find_path(BDB_INCLUDE_DIR db.h REQUIRED)
find_library(BDB_LIBRARY NAMES db-5.3 REQUIRED)
add_library(mg_bdb INTERFACE)
target_include_directories(mg_bdb INTERFACE ${BDB_INCLUDE_DIR})
target_link_libraries(mg_bdb INTERFACE ${BDB_LIBRARY})

find_program(MG_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT MG_PYTHON3)
  find_program(MG_PYTHON3 python3 REQUIRED)
endif()
