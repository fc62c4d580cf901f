list(APPEND GEMMA_SOURCES formats/dtype.cpp formats/tensor_set.cpp formats/gguf.cpp formats/safetensors.cpp
  formats/gguf_writer.cpp formats/safetensors_writer.cpp formats/shard_index.cpp)
# Container readers that live in their own folders list their sources there.
foreach(sub orbax torch)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/${sub}/sources.cmake)
    include(${CMAKE_CURRENT_LIST_DIR}/${sub}/sources.cmake)
  endif()
endforeach()
