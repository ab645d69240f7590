# `cmake --install build --prefix P` installs json2vec for programs of their own:
#
#   P/include/json2vec/json2vec.h, engine.h, cli.h   the public headers (#include <json2vec/json2vec.h>)
#   P/include/json2vec/<layer>/...                   every layer's headers, as src/ holds them
#   P/include/json2vec/duckdb.h, P/lib/libduckdb.so  the bundled DuckDB
#   P/lib/libjson2vec_<layer>.a                      one static library per layer
#   P/lib/cmake/json2vec/                            find_package(json2vec): json2vec::json2vec
#   P/lib/pkgconfig/json2vec.pc                      pkg-config --cflags --libs json2vec
#   P/bin/json2vec                                   the command line
#
# Headers include each other from src/'s root ("engine/trainer.h"), so a consumer compiles
# with P/include and P/include/json2vec on its include path; the exported targets carry both.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(J2V_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/json2vec)
get_property(J2V_INSTALL_LAYERS GLOBAL PROPERTY J2V_LAYERS)

# ---- Targets --------------------------------------------------------------------------------
set(J2V_INSTALL_TARGETS json2vec_lib j2v_torch)
foreach(layer IN LISTS J2V_INSTALL_LAYERS)
  target_include_directories(j2v_${layer} INTERFACE
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/json2vec>)
  # Exported as json2vec::<layer> (json2vec::engine alone serves a program of its own model).
  set_target_properties(j2v_${layer} PROPERTIES EXPORT_NAME ${layer})
  list(APPEND J2V_INSTALL_TARGETS j2v_${layer})
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/src/${layer}/
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/json2vec/${layer}
    FILES_MATCHING PATTERN "*.h")
endforeach()
target_include_directories(json2vec_lib INTERFACE
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/json2vec>)
# The headers use C++17; a consumer gets it without saying so.
target_compile_features(json2vec_lib INTERFACE cxx_std_17)
set_target_properties(json2vec_lib PROPERTIES EXPORT_NAME json2vec)
# json2vec::torch is exported as a name only: json2vecConfig.cmake fills it from the
# consumer's own find_package(Torch).
set_target_properties(j2v_torch PROPERTIES EXPORT_NAME torch)

install(TARGETS ${J2V_INSTALL_TARGETS} EXPORT json2vecTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/json2vec/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/json2vec
  FILES_MATCHING PATTERN "*.h")

# The command line, finding the bundled libduckdb.so beside it wherever the prefix moves.
set_target_properties(json2vec_cli PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
install(TARGETS json2vec json2vec_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# DuckDB: the library and its one header (io/ and data/ headers include "duckdb.h").
install(FILES ${DUCKDB_ROOT}/lib/libduckdb.so DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${DUCKDB_ROOT}/include/duckdb.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/json2vec)

# ---- CMake package ----------------------------------------------------------------------------
install(EXPORT json2vecTargets NAMESPACE json2vec:: DESTINATION ${J2V_INSTALL_CMAKEDIR})
configure_package_config_file(cmake/json2vecConfig.cmake.in
  ${CMAKE_BINARY_DIR}/json2vecConfig.cmake
  INSTALL_DESTINATION ${J2V_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/json2vecConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/json2vecConfig.cmake ${CMAKE_BINARY_DIR}/json2vecConfigVersion.cmake
  DESTINATION ${J2V_INSTALL_CMAKEDIR})

# ---- pkg-config -------------------------------------------------------------------------------
# Static libraries: everything they need is in Libs / Requires (not .private).
# LibTorch has no .pc file: its include directories, definitions and libraries are spelled
# out from what find_package(Torch) found.
function(j2v_collect_definitions out)
  set(seen)
  set(queue ${ARGN})
  set(defs)
  while(queue)
    list(POP_FRONT queue item)
    if(NOT TARGET ${item} OR item IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${item})
    get_target_property(d ${item} INTERFACE_COMPILE_DEFINITIONS)
    if(d)
      list(APPEND defs ${d})
    endif()
    get_target_property(l ${item} INTERFACE_LINK_LIBRARIES)
    if(l)
      list(APPEND queue ${l})
    endif()
  endwhile()
  list(FILTER defs EXCLUDE REGEX "\\$<")
  list(REMOVE_DUPLICATES defs)
  set(${out} ${defs} PARENT_SCOPE)
endfunction()

set(J2V_PC_TORCH_CFLAGS ${TORCH_CXX_FLAGS})
foreach(dir IN LISTS TORCH_INCLUDE_DIRS)
  if(NOT dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    list(APPEND J2V_PC_TORCH_CFLAGS -isystem ${dir})
  endif()
endforeach()
j2v_collect_definitions(J2V_PC_TORCH_DEFS ${TORCH_LIBRARIES})
foreach(def IN LISTS J2V_PC_TORCH_DEFS)
  list(APPEND J2V_PC_TORCH_CFLAGS -D${def})
endforeach()
list(JOIN J2V_PC_TORCH_CFLAGS " " J2V_PC_TORCH_CFLAGS)

# libtorch.so only registers operators: linked with --no-as-needed, as Torch's own target does.
set(J2V_PC_TORCH_LIBS)
foreach(lib IN LISTS TORCH_LIBRARIES)
  if(IS_ABSOLUTE ${lib})
    get_filename_component(dir ${lib} DIRECTORY)
    list(APPEND J2V_PC_TORCH_LIBS -L${dir})
    break()
  endif()
endforeach()
list(APPEND J2V_PC_TORCH_LIBS -Wl,--no-as-needed -ltorch -Wl,--as-needed -ltorch_cpu -lc10)
list(JOIN J2V_PC_TORCH_LIBS " " J2V_PC_TORCH_LIBS)

# The engine and serving layers call LibTorch's OpenMP runtime directly.
set(J2V_PC_OPENMP_LIBS)
foreach(name IN LISTS OpenMP_CXX_LIB_NAMES)
  list(APPEND J2V_PC_OPENMP_LIBS -l${name})
endforeach()
list(JOIN J2V_PC_OPENMP_LIBS " " J2V_PC_OPENMP_LIBS)

# Each layer before the ones it uses: cli serve model data engine fields nn io schema base.
set(J2V_PC_LAYER_LIBS)
set(layers ${J2V_INSTALL_LAYERS})
list(REVERSE layers)
foreach(layer IN LISTS layers)
  list(APPEND J2V_PC_LAYER_LIBS -ljson2vec_${layer})
endforeach()
list(JOIN J2V_PC_LAYER_LIBS " " J2V_PC_LAYER_LIBS)

# The prefix from the .pc file's own place, so a moved prefix still works.
file(RELATIVE_PATH J2V_PC_PREFIX_FROM_PCFILEDIR /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
string(REGEX REPLACE "/$" "" J2V_PC_PREFIX_FROM_PCFILEDIR ${J2V_PC_PREFIX_FROM_PCFILEDIR})

configure_file(cmake/json2vec.pc.in ${CMAKE_BINARY_DIR}/json2vec.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/json2vec.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
