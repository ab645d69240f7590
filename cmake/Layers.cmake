# j2v_layer(NAME [DEPENDS layer...] [TORCH] [LINK target...] [SOURCES_GLOB pattern...])
#
# Makes the static library j2v_NAME from src/NAME/**/*.cc (or the given globs). It links the
# layers it DEPENDS on (and, through them, theirs) and compiles against a view of src/ that
# holds only NAME and those layers: build/layers/NAME/{NAME,dep,...} -> src/{NAME,dep,...}.
# A header of any other layer cannot be found from here, so a wrong-way include fails the
# build. TORCH: the layer uses LibTorch and the shared precompiled header.

# The one precompiled header every LibTorch layer reuses (~25 s per translation unit without).
if(NOT EXISTS ${CMAKE_BINARY_DIR}/j2v_pch.cc)  # rewritten, it would be recompiled on every configure
  file(WRITE ${CMAKE_BINARY_DIR}/j2v_pch.cc "// the precompiled header's own translation unit\n")
endif()
add_library(j2v_pch OBJECT ${CMAKE_BINARY_DIR}/j2v_pch.cc)
target_link_libraries(j2v_pch PUBLIC j2v_torch nlohmann_json::nlohmann_json)
target_precompile_headers(j2v_pch PRIVATE <torch/torch.h> <nlohmann/json.hpp> <string> <vector>)

function(j2v_layer name)
  cmake_parse_arguments(ARG "TORCH" "" "DEPENDS;LINK;SOURCES_GLOB" ${ARGN})
  if(NOT ARG_SOURCES_GLOB)
    set(ARG_SOURCES_GLOB src/${name}/*.cc)
  endif()
  set(sources)
  foreach(pattern IN LISTS ARG_SOURCES_GLOB)
    file(GLOB_RECURSE found CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${pattern})
    list(APPEND sources ${found})
  endforeach()
  add_library(j2v_${name} STATIC ${sources})

  # The layers this one may see: itself and the closure of its dependencies.
  set(visible ${name})
  foreach(dep IN LISTS ARG_DEPENDS)
    get_property(dep_visible GLOBAL PROPERTY J2V_VISIBLE_${dep})
    if(NOT dep_visible)
      message(FATAL_ERROR "layer '${name}' depends on '${dep}', which is not declared before it")
    endif()
    list(APPEND visible ${dep_visible})
  endforeach()
  list(REMOVE_DUPLICATES visible)
  set_property(GLOBAL PROPERTY J2V_VISIBLE_${name} ${visible})

  set(view ${CMAKE_BINARY_DIR}/layers/${name})
  file(REMOVE_RECURSE ${view})
  file(MAKE_DIRECTORY ${view})
  foreach(layer IN LISTS visible)
    file(CREATE_LINK ${CMAKE_SOURCE_DIR}/src/${layer} ${view}/${layer} SYMBOLIC)
  endforeach()
  target_include_directories(j2v_${name} PRIVATE ${view})

  foreach(dep IN LISTS ARG_DEPENDS)
    target_link_libraries(j2v_${name} PUBLIC j2v_${dep})
  endforeach()
  if(ARG_LINK)
    target_link_libraries(j2v_${name} PUBLIC ${ARG_LINK})
  endif()
  if(ARG_TORCH)
    target_link_libraries(j2v_${name} PUBLIC j2v_torch nlohmann_json::nlohmann_json)
    target_precompile_headers(j2v_${name} REUSE_FROM j2v_pch)
  endif()
  target_compile_options(j2v_${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  set_target_properties(j2v_${name} PROPERTIES OUTPUT_NAME json2vec_${name})
  set_property(GLOBAL APPEND PROPERTY J2V_LAYERS ${name})
endfunction()
