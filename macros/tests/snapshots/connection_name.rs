// Input:
// #[wsk_endpoint(kind = "connection", remote = "localhost:7")]
// pub struct Named;
//
// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):

pub struct Named;
const _: () = {
    static __WSK_CONFIG: ::wsk::__private::Config = ::wsk::__private::Config {
        name: "Named",
        addr: ::wsk::__private::SocketAddr::from_sockaddr_in_bytes([
            2u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8,
            0u8,
        ]),
        remote: ::core::option::Option::Some(::wsk::__private::Remote::Name {
            host: "localhost",
            port: 7u16,
        }),
        max_connections: 0u32,
        exclusive: false,
        v6only: ::core::option::Option::None,
        events: ::wsk::__private::Events::NONE,
    };
    #[automatically_derived]
    impl ::wsk::Endpoint for Named {
        fn config(&self) -> &'static ::wsk::__private::Config {
            &__WSK_CONFIG
        }
        fn start_with(
            &'static self,
            __wsk_rt: &'static ::wsk::Runtime,
            __wsk_addr: ::core::option::Option<::wsk::SocketAddr>,
        ) -> ::wsk::Result<()> {
            ::wsk::__private::start::<
                ::wsk::__private::kind::Connection,
                Self,
            >(self, __wsk_rt, &__WSK_CONFIG, __wsk_addr)
        }
    }
};
