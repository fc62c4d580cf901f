# Orbax / OCDBT / zarr readers (their model loader, model/load_orbax.cpp, is in model/).
list(APPEND GEMMA_SOURCES formats/orbax/file_set.cpp formats/orbax/ocdbt.cpp formats/orbax/zarr.cpp
  formats/orbax/orbax.cpp)
