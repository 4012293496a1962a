# Install: the public headers, both libraries, an exported CMake package
# (find_package(sharena) -> sharena::sharena, sharena::sharena_static) and a
# pkg-config file (pkg-config sharena).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(FILES ${PROJECT_SOURCE_DIR}/include/sharena.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/sharena DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS sharena sharena_static EXPORT sharenaTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# libsharena-malloc.so, for LD_PRELOAD (not built under sanitizers).
if(TARGET sharena_malloc)
  install(TARGETS sharena_malloc LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(EXPORT sharenaTargets NAMESPACE sharena::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sharena)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/sharenaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/sharenaConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sharena)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/sharenaConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/sharenaConfig.cmake ${PROJECT_BINARY_DIR}/sharenaConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sharena)

configure_file(${PROJECT_SOURCE_DIR}/cmake/sharena.pc.in ${PROJECT_BINARY_DIR}/sharena.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/sharena.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
